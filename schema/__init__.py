"""The shop's GraphQL contract (SPEC section 3) as a strawberry schema, and the shop graph.

`graph` is what `graph: shop` (the default) serves: this schema over the shop's clients and
loaders. The token mutations (`login`, `refreshToken`, `logout`) are the engine's, added to
every graph when an `auth` upstream is configured.
"""

from __future__ import annotations

import strawberry

from bff.graph import Graph
from resolvers.loaders import ShopLoaders
from schema.mutation import Mutation
from schema.query import Query
from upstream_clients import ShopClients

schema = strawberry.Schema(query=Query, mutation=Mutation)

graph = Graph.from_strawberry(schema, clients=ShopClients, loaders=ShopLoaders, name="shop")


def sdl() -> str:
    """The shop graph's own SDL (without the engine's token mutations)."""
    return schema.as_str()


__all__ = ["Mutation", "Query", "graph", "schema", "sdl"]
