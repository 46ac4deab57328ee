"""The root `Query` type. Each field answers the record(s) `resolvers.queries` loads."""

from __future__ import annotations

import strawberry

from bff.auth import Authenticated, OwnerOr, Scopes
from bff.graph.declare import field
from bff.graph.permissions import requires
from resolvers import queries
from resolvers.pages import Connection
from schema.types import Ctx, Order, OrderConnection, Product, ProductConnection, User, given
from upstream_clients import records


def order_owner(order: records.Order) -> int:
    return order.user_id


@strawberry.type
class Query:
    @field(User | None, permission=requires(Authenticated()))
    async def me(self, info: Ctx) -> records.User | None:
        return await queries.me(info.context)

    @field(User | None)
    async def user(self, info: Ctx, id: strawberry.ID) -> records.User | None:
        return await queries.user(info.context, id)

    @field(list[User | None])
    async def users(self, info: Ctx, ids: list[strawberry.ID]) -> list[records.User | None]:
        return await queries.users(info.context, ids)

    @field(Product | None)
    async def product(self, info: Ctx, id: strawberry.ID) -> records.Product | None:
        return await queries.product(info.context, id)

    @field(ProductConnection)
    async def products(
        self,
        info: Ctx,
        category: str | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> Connection[records.Product]:
        return await queries.products(info.context, given(category), first, given(after))

    @field(Order | None, permission=requires(OwnerOr("orders:read"), owner_of_result=order_owner))
    async def order(self, info: Ctx, id: strawberry.ID) -> records.Order | None:
        return await queries.order(info.context, id)

    @field(OrderConnection, permission=requires(Scopes("orders:read")))
    async def orders(
        self, info: Ctx, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> Connection[records.Order]:
        return await queries.orders(info.context, first, given(after))
