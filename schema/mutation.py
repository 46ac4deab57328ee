"""The root `Mutation` type: the token mutations and the shop's writes."""

from __future__ import annotations

import strawberry

from bff.auth import Authenticated
from bff.auth.issuing import TokenPair
from resolvers import auth, mutations
from schema.fields import mutation
from schema.permissions import requires
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


@strawberry.type(description="Tokens issued by the gateway (as `POST /auth/token` answers).")
class AuthPayload:
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


def payload(pair: TokenPair) -> AuthPayload:
    return AuthPayload(
        access_token=pair.access_token,
        token_type=pair.token_type,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def login(self, info: Ctx, username: str, password: str) -> AuthPayload:
        return payload(await auth.login(info.context, username, password))

    @strawberry.mutation
    async def refresh_token(self, info: Ctx, refresh_token: str) -> AuthPayload:
        return payload(await auth.refresh_token(info.context, refresh_token))

    @strawberry.mutation  # revokes the presented token
    async def logout(self, info: Ctx) -> bool:
        return await auth.logout(info.context)

    @mutation(Order, permission=requires(Authenticated()))
    async def place_order(self, info: Ctx, input: PlaceOrderInput) -> records.Order:
        lines = [(line.product_id, line.quantity) for line in input.items]
        return await mutations.place_order(info.context, lines)

    @mutation(Review, permission=requires(Authenticated()))
    async def add_review(self, info: Ctx, input: AddReviewInput) -> records.Review:
        return await mutations.add_review(info.context, input.product_id, input.rating, input.body)
