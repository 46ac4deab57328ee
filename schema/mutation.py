"""The root `Mutation` type: the shop's writes (the token mutations are the engine's)."""

from __future__ import annotations

import strawberry

from bff.auth import Authenticated
from bff.graph.declare import mutation
from bff.graph.permissions import requires
from resolvers import mutations
from schema.types import Ctx, Order, Review
from upstream_clients import records


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
    @mutation(Order, permission=requires(Authenticated()))
    async def place_order(self, info: Ctx, input: PlaceOrderInput) -> records.Order:
        lines = [(line.product_id, line.quantity) for line in input.items]
        return await mutations.place_order(info.context, lines)

    @mutation(Review, permission=requires(Authenticated()))
    async def add_review(self, info: Ctx, input: AddReviewInput) -> records.Review:
        return await mutations.add_review(info.context, input.product_id, input.rating, input.body)
