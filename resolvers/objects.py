"""Field logic of the object types, over many parents at once.

Each function takes the parents of one level of a query (the orders of a page, the products
of every order line...) and answers one value or exception per parent, in order, from ONE
dataloader call: the fast path calls it once per level, graphql-core once per parent (and the
loader batches those). An exception stands for that parent only: a failed batch fails each
of its parents with the same error, and each field it feeds becomes null with its own path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from resolvers.arguments import offset_after, page_size
from resolvers.context import RequestContext
from resolvers.pages import Connection
from upstream_clients.records import Order, OrderLine, Product, Review, User

Settled = list[Any]  # one value or exception per parent


async def users_by_id(ctx: RequestContext, ids: Sequence[int]) -> Settled:
    return await ctx.loaders.users.load_settled(ids)


async def products_by_id(ctx: RequestContext, ids: Sequence[int]) -> Settled:
    return await ctx.loaders.products.load_settled(ids)


async def order_users(ctx: RequestContext, orders: Sequence[Order]) -> Settled:
    return await users_by_id(ctx, [o.user_id for o in orders])


async def line_products(ctx: RequestContext, lines: Sequence[OrderLine]) -> Settled:
    return await products_by_id(ctx, [line.product_id for line in lines])


async def review_authors(ctx: RequestContext, reviews: Sequence[Review]) -> Settled:
    return await users_by_id(ctx, [r.user_id for r in reviews])


async def review_products(ctx: RequestContext, reviews: Sequence[Review]) -> Settled:
    return await products_by_id(ctx, [r.product_id for r in reviews])


async def stock(ctx: RequestContext, products: Sequence[Product]) -> Settled:
    """Units available of each product, from inventory (`None` when it does not know one)."""
    found = await ctx.loaders.stock.load_settled([p.id for p in products])
    return [s.available if s is not None and not isinstance(s, Exception) else s for s in found]


async def reviews(ctx: RequestContext, products: Sequence[Product]) -> Settled:
    """All reviews of each product, in no particular order."""
    found = await ctx.loaders.reviews.load_settled([p.id for p in products])
    return [() if r is None else r for r in found]


async def first_reviews(
    ctx: RequestContext, products: Sequence[Product], first: int | None
) -> Settled:
    """The first reviews of each product, by id ascending (records order by their fields, id
    first)."""
    limit = page_size(first, 5)
    pages = await reviews(ctx, products)
    return [r if isinstance(r, Exception) else sorted(r)[:limit] for r in pages]


async def review_counts(ctx: RequestContext, products: Sequence[Product]) -> Settled:
    return [r if isinstance(r, Exception) else len(r) for r in await reviews(ctx, products)]


async def average_ratings(ctx: RequestContext, products: Sequence[Product]) -> Settled:
    averages: dict[int, Any] = {}  # by the loaded tuple: a product listed twice costs one
    settled = []
    for found in await reviews(ctx, products):
        key = id(found)
        if key not in averages:
            if isinstance(found, Exception):
                averages[key] = found
            elif not found:
                averages[key] = None
            else:  # the mean rating, to 2 places: inline, a Dashboard averages 40 products
                total = 0
                for review in found:
                    total += review.rating
                averages[key] = round(total / len(found), 2)
        settled.append(averages[key])
    return settled


def emails(users: Sequence[User]) -> Settled:
    return [u.email for u in users]


async def orders_of_users(
    ctx: RequestContext, users: Sequence[User], first: int | None, after: str | None
) -> Settled:
    """A page of each user's orders, newest first."""
    limit, offset = page_size(first, 10), offset_after(after)
    pages = await ctx.loaders.user_orders.load_settled([(u.id, limit, offset) for u in users])
    return [p if p is None or isinstance(p, Exception) else Connection(p) for p in pages]
