"""Field logic of the object types: each loads through a dataloader, never an upstream directly."""

from __future__ import annotations

from resolvers.context import RequestContext
from upstream_clients.records import Product, Review, User


async def user_by_id(ctx: RequestContext, user_id: int) -> User | None:
    return await ctx.loaders.users.load(user_id)


async def product_by_id(ctx: RequestContext, product_id: int) -> Product | None:
    return await ctx.loaders.products.load(product_id)


async def stock(ctx: RequestContext, product_id: int) -> int | None:
    record = await ctx.loaders.stock.load(product_id)
    return None if record is None else record.available


async def reviews(ctx: RequestContext, product_id: int) -> tuple[Review, ...]:
    return await ctx.loaders.reviews.load(product_id) or ()


def average_rating(reviews: tuple[Review, ...]) -> float | None:
    if not reviews:
        return None
    return round(sum(r.rating for r in reviews) / len(reviews), 2)
