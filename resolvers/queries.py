"""Root query logic: what to load for each root field. Permissions are declared on the schema."""

from __future__ import annotations

from collections.abc import Sequence

from bff.errors import Unauthenticated
from resolvers.arguments import offset_after, page_size, parse_id
from resolvers.context import RequestContext
from resolvers.pages import Connection
from upstream_clients.records import Order, Product, User


async def me(ctx: RequestContext) -> User | None:
    user_id = ctx.principal.user_id
    if user_id is None:
        if not ctx.principal.is_authenticated:
            raise Unauthenticated()
        return None
    return await ctx.loaders.users.load(user_id)


async def user(ctx: RequestContext, id: str) -> User | None:
    return await ctx.loaders.users.load(parse_id(id))


async def users(ctx: RequestContext, ids: Sequence[str]) -> list[User | None]:
    """Positional: one entry per requested id, duplicates kept, `None` where missing."""
    keys = [parse_id(i) for i in ids]
    return list(await ctx.loaders.users.load_many(keys)) if keys else []


async def product(ctx: RequestContext, id: str) -> Product | None:
    return await ctx.loaders.products.load(parse_id(id))


async def order(ctx: RequestContext, id: str) -> Order | None:
    return await ctx.loaders.orders.load(parse_id(id))


async def products(
    ctx: RequestContext, category: str | None, first: int | None, after: str | None
) -> Connection[Product]:
    offset = offset_after(after)
    limit = page_size(first, 20)
    page = await ctx.clients.catalog.list_products(category=category, limit=limit, offset=offset)
    for item in page.items:
        ctx.loaders.products.prime(item.id, item)
    return Connection(page)


async def orders(ctx: RequestContext, first: int | None, after: str | None) -> Connection[Order]:
    offset = offset_after(after)
    limit = page_size(first, 20)
    return Connection(await ctx.clients.orders.list_orders(limit=limit, offset=offset))
