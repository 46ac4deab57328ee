"""The GraphQL object types of SPEC section 3. No I/O here: each field hands off to `resolvers`.

The value of an object type is the record `resolvers` return (a `records.Product` is a
`Product`, a `resolvers.pages.Connection` a `ProductConnection`): plain fields read its
attributes, so no object is built per record. A field that loads data declares its batch form
(`schema.batch`), one function for every parent of a level; its strawberry resolver calls it
for one parent. The forms below bind GraphQL arguments to the field logic in
`resolvers.objects`, looked up when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.types import Info

from bff.auth import OwnerOr
from resolvers import objects
from resolvers.context import RequestContext
from schema.batch import Args, batch, one
from schema.permissions import requires
from upstream_clients import records

Ctx = Info[RequestContext, None]
Parents = Sequence[Any]


def given(value: Any) -> Any:
    """`None` for an argument the client left out (strawberry's UNSET), else the value."""
    return None if value is strawberry.UNSET else value


def user_id(user: records.User) -> int:
    return user.id


# -- batch forms


async def order_user(ctx: RequestContext, orders: Parents, args: Args) -> list[Any]:
    return await objects.order_users(ctx, orders)


async def line_product(ctx: RequestContext, lines: Parents, args: Args) -> list[Any]:
    return await objects.line_products(ctx, lines)


async def review_author(ctx: RequestContext, reviews: Parents, args: Args) -> list[Any]:
    return await objects.review_authors(ctx, reviews)


async def review_product(ctx: RequestContext, reviews: Parents, args: Args) -> list[Any]:
    return await objects.review_products(ctx, reviews)


async def product_stock(ctx: RequestContext, products: Parents, args: Args) -> list[Any]:
    return await objects.stock(ctx, products)


async def product_reviews(ctx: RequestContext, products: Parents, args: Args) -> list[Any]:
    return await objects.first_reviews(ctx, products, args.get("first"))


async def product_review_count(ctx: RequestContext, products: Parents, args: Args) -> list[Any]:
    return await objects.review_counts(ctx, products)


async def product_average_rating(ctx: RequestContext, products: Parents, args: Args) -> list[Any]:
    return await objects.average_ratings(ctx, products)


def user_email(ctx: RequestContext, users: Parents, args: Args) -> list[Any]:
    return objects.emails(users)


async def user_orders(ctx: RequestContext, users: Parents, args: Args) -> list[Any]:
    return await objects.orders_of_users(ctx, users, args.get("first"), args.get("after"))


# -- types


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class User:
    id: strawberry.ID
    name: str

    @strawberry.field(
        extensions=requires(OwnerOr("users:read:email"), owner=user_id),
        metadata=batch(user_email),
    )
    def email(self, info: Ctx) -> str | None:
        return one(user_email, info, self)

    @strawberry.field(
        extensions=requires(OwnerOr("orders:read"), owner=user_id),
        metadata=batch(user_orders),
    )
    async def orders(
        self, info: Ctx, first: int | None = 10, after: str | None = strawberry.UNSET
    ) -> OrderConnection:
        return await one(user_orders, info, self, first=first, after=after)


@strawberry.type
class Product:
    id: strawberry.ID
    name: str
    price: float
    currency: str
    category: str

    @strawberry.field(description="Units available, from inventory.", metadata=batch(product_stock))
    async def stock(self, info: Ctx) -> int | None:
        return await one(product_stock, info, self)

    @strawberry.field(metadata=batch(product_reviews))
    async def reviews(self, info: Ctx, first: int | None = 5) -> list[Review]:
        return await one(product_reviews, info, self, first=first)

    @strawberry.field(metadata=batch(product_review_count))
    async def review_count(self, info: Ctx) -> int:
        return await one(product_review_count, info, self)

    @strawberry.field(metadata=batch(product_average_rating))
    async def average_rating(self, info: Ctx) -> float | None:
        return await one(product_average_rating, info, self)


@strawberry.type
class Review:
    id: strawberry.ID
    rating: int
    body: str

    @strawberry.field(metadata=batch(review_author))
    async def author(self, info: Ctx) -> User | None:
        return await one(review_author, info, self)

    @strawberry.field(metadata=batch(review_product))
    async def product(self, info: Ctx) -> Product | None:
        return await one(review_product, info, self)


@strawberry.type
class OrderItem:
    quantity: int
    unit_price: float

    @strawberry.field(metadata=batch(line_product))
    async def product(self, info: Ctx) -> Product | None:
        return await one(line_product, info, self)


@strawberry.type
class Order:
    id: strawberry.ID
    status: str
    created_at: str
    total: float
    items: list[OrderItem]

    @strawberry.field(metadata=batch(order_user))
    async def user(self, info: Ctx) -> User | None:
        return await one(order_user, info, self)


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
