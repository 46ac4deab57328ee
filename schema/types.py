"""The GraphQL object types of SPEC section 3. No I/O here: each field hands off to `resolvers`.

A type is built from a frozen record (`from_record`); plain fields are copied so that graphql-
core's default resolver reads them, and fields that need another upstream call a resolver.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from bff.auth import OwnerOr
from resolvers import objects, queries
from resolvers.arguments import encode_cursor, page_size
from resolvers.context import RequestContext
from schema.permissions import requires
from upstream_clients import records

Ctx = Info[RequestContext, None]


def given(value: Any) -> Any:
    """`None` for an argument the client left out (strawberry's UNSET), else the value."""
    return None if value is strawberry.UNSET else value


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class User:
    id: strawberry.ID
    name: str
    record: strawberry.Private[records.User]

    @classmethod
    def from_record(cls, r: records.User | None) -> User | None:
        return None if r is None else cls(id=strawberry.ID(str(r.id)), name=r.name, record=r)

    @strawberry.field(extensions=requires(OwnerOr("users:read:email"), owner=lambda u: u.record.id))
    def email(self) -> str | None:
        return self.record.email

    @strawberry.field(extensions=requires(OwnerOr("orders:read"), owner=lambda u: u.record.id))
    async def orders(
        self, info: Ctx, first: int | None = 10, after: str | None = strawberry.UNSET
    ) -> OrderConnection:
        page = await queries.orders_of_user(info.context, self.record.id, first, given(after))
        return OrderConnection.from_page(page)


@strawberry.type
class Product:
    id: strawberry.ID
    name: str
    price: float
    currency: str
    category: str
    record: strawberry.Private[records.Product]

    @classmethod
    def from_record(cls, r: records.Product | None) -> Product | None:
        if r is None:
            return None
        return cls(
            id=strawberry.ID(str(r.id)),
            name=r.name,
            price=r.price,
            currency=r.currency,
            category=r.category,
            record=r,
        )

    @strawberry.field(description="Units available, from inventory.")
    async def stock(self, info: Ctx) -> int | None:
        return await objects.stock(info.context, self.record.id)

    @strawberry.field
    async def reviews(self, info: Ctx, first: int | None = 5) -> list[Review]:
        limit = page_size(first, 5)
        found = await objects.reviews(info.context, self.record.id)
        return [Review.from_record(r) for r in found[:limit]]

    @strawberry.field
    async def review_count(self, info: Ctx) -> int:
        return len(await objects.reviews(info.context, self.record.id))

    @strawberry.field
    async def average_rating(self, info: Ctx) -> float | None:
        return objects.average_rating(await objects.reviews(info.context, self.record.id))


@strawberry.type
class Review:
    id: strawberry.ID
    rating: int
    body: str
    record: strawberry.Private[records.Review]

    @classmethod
    def from_record(cls, r: records.Review) -> Review:
        return cls(id=strawberry.ID(str(r.id)), rating=r.rating, body=r.body, record=r)

    @strawberry.field
    async def author(self, info: Ctx) -> User | None:
        return User.from_record(await objects.user_by_id(info.context, self.record.user_id))

    @strawberry.field
    async def product(self, info: Ctx) -> Product | None:
        return Product.from_record(
            await objects.product_by_id(info.context, self.record.product_id)
        )


@strawberry.type
class OrderItem:
    quantity: int
    unit_price: float
    record: strawberry.Private[records.OrderLine]

    @strawberry.field
    async def product(self, info: Ctx) -> Product | None:
        return Product.from_record(
            await objects.product_by_id(info.context, self.record.product_id)
        )


@strawberry.type
class Order:
    id: strawberry.ID
    status: str
    created_at: str
    total: float
    items: list[OrderItem]
    record: strawberry.Private[records.Order]

    @classmethod
    def from_record(cls, r: records.Order | None) -> Order | None:
        if r is None:
            return None
        return cls(
            id=strawberry.ID(str(r.id)),
            status=r.status,
            created_at=r.created_at,
            total=r.total,
            items=[
                OrderItem(quantity=i.quantity, unit_price=i.unit_price, record=i) for i in r.items
            ],
            record=r,
        )

    @strawberry.field
    async def user(self, info: Ctx) -> User | None:
        return User.from_record(await objects.user_by_id(info.context, self.record.user_id))


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

    @classmethod
    def from_page(cls, page: records.Page[records.Product]) -> ProductConnection:
        nodes: list[Any] = [Product.from_record(r) for r in page.items]
        edges = [
            ProductEdge(cursor=encode_cursor(page.offset + i), node=n) for i, n in enumerate(nodes)
        ]
        return cls(nodes=nodes, edges=edges, page_info=page_info(page), total_count=page.total)


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

    @classmethod
    def from_page(cls, page: records.Page[records.Order]) -> OrderConnection:
        nodes: list[Any] = [Order.from_record(r) for r in page.items]
        edges = [
            OrderEdge(cursor=encode_cursor(page.offset + i), node=n) for i, n in enumerate(nodes)
        ]
        return cls(nodes=nodes, edges=edges, page_info=page_info(page), total_count=page.total)


def page_info(page: records.Page[Any]) -> PageInfo:
    end = page.offset + len(page.items)
    return PageInfo(
        has_next_page=end < page.total,
        end_cursor=encode_cursor(end - 1) if page.items else None,
    )
