"""Mutation logic: the acting user always comes from the token, never from the input."""

from __future__ import annotations

from collections.abc import Sequence

from bff.errors import BadUserInput, Forbidden, NotFound
from resolvers.arguments import parse_id
from resolvers.context import RequestContext
from upstream_clients.records import Order, Review

MAX_LINES = 100


def acting_user(ctx: RequestContext) -> int:
    user_id = ctx.principal.user_id
    if user_id is None:
        raise Forbidden("This principal is not a shop user")
    return user_id


async def place_order(ctx: RequestContext, lines: Sequence[tuple[str, int]]) -> Order:
    user_id = acting_user(ctx)
    if not lines:
        raise BadUserInput("An order needs at least one item")
    if len(lines) > MAX_LINES:
        raise BadUserInput(f"An order takes at most {MAX_LINES} items")
    parsed = []
    for product_id, quantity in lines:
        if quantity < 1:
            raise BadUserInput("quantity must be at least 1")
        parsed.append((parse_id(product_id, "productId"), quantity))
    order = await ctx.clients.orders.create_order(user_id, parsed)
    ctx.loaders.orders.prime(order.id, order)
    ctx.loaders.user_orders.clear_all()
    return order


async def add_review(ctx: RequestContext, product_id: str, rating: int, body: str) -> Review:
    user_id = acting_user(ctx)
    pid = parse_id(product_id, "productId")
    if await ctx.loaders.products.load(pid) is None:
        raise NotFound(f"Product {pid} not found")
    review = await ctx.clients.reviews.create_review(pid, user_id, rating, body)
    ctx.loaders.reviews.clear(pid)
    return review
