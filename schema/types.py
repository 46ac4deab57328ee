"""The GraphQL object types of SPEC section 3. No I/O here: each field hands off to `resolvers`.

The value of an object type is the record `resolvers` return (a `records.Product` is a
`Product`, a `resolvers.pages.Connection` a `ProductConnection`): plain fields read its
attributes, so no object is built per record. A field that loads data is declared once with
`@batched` (`schema.batch`): a function over all the parents of a level, with its arguments
and its permission; the fast path calls it once per level, graphql-core once per parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.types import Info

from bff.auth import OwnerOr
from bff.graph.batch import batched
from bff.graph.permissions import requires
from resolvers import objects
from resolvers.context import RequestContext
from upstream_clients import records

Ctx = Info[RequestContext, None]
Settled = list[Any]  # what `resolvers.objects` answer: one value or exception per parent


def given(value: Any) -> Any:
    """`None` for an argument the client left out (strawberry's UNSET), else the value."""
    return None if value is strawberry.UNSET else value


def user_id(user: records.User) -> int:
    return user.id


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class User:
    id: strawberry.ID
    name: str

    @batched(permission=requires(OwnerOr("users:read:email"), owner=user_id))
    def email(ctx: RequestContext, users: Sequence[records.User]) -> list[str | None]:
        return objects.emails(users)

    @batched(permission=requires(OwnerOr("orders:read"), owner=user_id))
    async def orders(
        ctx: RequestContext,
        users: Sequence[records.User],
        first: int | None = 10,
        after: str | None = strawberry.UNSET,
    ) -> list[OrderConnection]:
        return await objects.orders_of_users(ctx, users, first, given(after))


@strawberry.type
class Product:
    id: strawberry.ID
    name: str
    price: float
    currency: str
    category: str

    @batched(description="Units available, from inventory.")
    async def stock(ctx: RequestContext, products: Sequence[records.Product]) -> list[int | None]:
        return await objects.stock(ctx, products)

    @batched()
    async def reviews(
        ctx: RequestContext, products: Sequence[records.Product], first: int | None = 5
    ) -> list[list[Review]]:
        return await objects.first_reviews(ctx, products, first)

    @batched()
    async def review_count(ctx: RequestContext, products: Sequence[records.Product]) -> list[int]:
        return await objects.review_counts(ctx, products)

    @batched()
    async def average_rating(
        ctx: RequestContext, products: Sequence[records.Product]
    ) -> list[float | None]:
        return await objects.average_ratings(ctx, products)


@strawberry.type
class Review:
    id: strawberry.ID
    rating: int
    body: str

    @batched()
    async def author(ctx: RequestContext, reviews: Sequence[records.Review]) -> list[User | None]:
        return await objects.review_authors(ctx, reviews)

    @batched()
    async def product(
        ctx: RequestContext, reviews: Sequence[records.Review]
    ) -> list[Product | None]:
        return await objects.review_products(ctx, reviews)


@strawberry.type
class OrderItem:
    quantity: int
    unit_price: float

    @batched()
    async def product(
        ctx: RequestContext, lines: Sequence[records.OrderLine]
    ) -> list[Product | None]:
        return await objects.line_products(ctx, lines)


@strawberry.type
class Order:
    id: strawberry.ID
    status: str
    created_at: str
    total: float
    items: list[OrderItem]

    @batched()
    async def user(ctx: RequestContext, orders: Sequence[records.Order]) -> list[User | None]:
        return await objects.order_users(ctx, orders)


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    nodes: list[Product]
    edges: list[ProductEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    nodes: list[Order]
    edges: list[OrderEdge]
    page_info: PageInfo
    total_count: int
