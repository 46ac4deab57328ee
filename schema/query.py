"""The root `Query` type."""

from __future__ import annotations

import strawberry

from bff.auth import Authenticated, OwnerOr, Scopes
from resolvers import queries
from schema.permissions import requires
from schema.types import Ctx, Order, OrderConnection, Product, ProductConnection, User, given


@strawberry.type
class Query:
    @strawberry.field(extensions=requires(Authenticated()))
    async def me(self, info: Ctx) -> User | None:
        return User.from_record(await queries.me(info.context))

    @strawberry.field
    async def user(self, info: Ctx, id: strawberry.ID) -> User | None:
        return User.from_record(await queries.user(info.context, id))

    @strawberry.field
    async def users(self, info: Ctx, ids: list[strawberry.ID]) -> list[User | None]:
        return [User.from_record(u) for u in await queries.users(info.context, ids)]

    @strawberry.field
    async def product(self, info: Ctx, id: strawberry.ID) -> Product | None:
        return Product.from_record(await queries.product(info.context, id))

    @strawberry.field
    async def products(
        self,
        info: Ctx,
        category: str | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> ProductConnection:
        page = await queries.products(info.context, given(category), first, given(after))
        return ProductConnection.from_page(page)

    @strawberry.field(
        extensions=requires(OwnerOr("orders:read"), owner_of_result=lambda o: o.record.user_id)
    )
    async def order(self, info: Ctx, id: strawberry.ID) -> Order | None:
        return Order.from_record(await queries.order(info.context, id))

    @strawberry.field(extensions=requires(Scopes("orders:read")))
    async def orders(
        self, info: Ctx, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> OrderConnection:
        return OrderConnection.from_page(await queries.orders(info.context, first, given(after)))
