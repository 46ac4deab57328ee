"""The root `Mutation` type (the token mutations arrive with the auth issue)."""

from __future__ import annotations

import strawberry

from bff.auth import Authenticated
from resolvers import mutations
from schema.permissions import requires
from schema.types import Ctx, Order, Review


@strawberry.input
class OrderLineInput:
    product_id: strawberry.ID
    quantity: int


@strawberry.input
class PlaceOrderInput:
    items: list[OrderLineInput]


@strawberry.input
class AddReviewInput:
    product_id: strawberry.ID
    rating: int
    body: str


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=requires(Authenticated()))
    async def place_order(self, info: Ctx, input: PlaceOrderInput) -> Order:
        lines = [(line.product_id, line.quantity) for line in input.items]
        return await mutations.place_order(info.context, lines)

    @strawberry.mutation(extensions=requires(Authenticated()))
    async def add_review(self, info: Ctx, input: AddReviewInput) -> Review:
        return await mutations.add_review(info.context, input.product_id, input.rating, input.body)
