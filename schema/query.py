"""The root `Query` type. Each field answers the record(s) `resolvers.queries` loads."""

from __future__ import annotations

import strawberry

from bff.auth import Authenticated, OwnerOr, Scopes
from resolvers import queries
from schema.permissions import requires
from schema.types import Ctx, Order, OrderConnection, Product, ProductConnection, User, given
from upstream_clients import records


def order_owner(order: records.Order) -> int:
    return order.user_id


@strawberry.type
class Query:
    @strawberry.field(extensions=requires(Authenticated()))
    async def me(self, info: Ctx) -> User | None:
        return await queries.me(info.context)

    @strawberry.field
    async def user(self, info: Ctx, id: strawberry.ID) -> User | None:
        return await queries.user(info.context, id)

    @strawberry.field
    async def users(self, info: Ctx, ids: list[strawberry.ID]) -> list[User | None]:
        return await queries.users(info.context, ids)

    @strawberry.field
    async def product(self, info: Ctx, id: strawberry.ID) -> Product | None:
        return await queries.product(info.context, id)

    @strawberry.field
    async def products(
        self,
        info: Ctx,
        category: str | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> ProductConnection:
        return await queries.products(info.context, given(category), first, given(after))

    @strawberry.field(extensions=requires(OwnerOr("orders:read"), owner_of_result=order_owner))
    async def order(self, info: Ctx, id: strawberry.ID) -> Order | None:
        return await queries.order(info.context, id)

    @strawberry.field(extensions=requires(Scopes("orders:read")))
    async def orders(
        self, info: Ctx, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> OrderConnection:
        return await queries.orders(info.context, first, given(after))
