"""The shop's view of the engine's `RequestContext`: its typed clients and loaders.

The engine builds one per request (`bff.graph.Graph.context`); the shop's clients and loaders
are made when a resolver first reads them (`ctx.loaders.users`, `ctx.clients.catalog`).
"""

from __future__ import annotations

from bff.graph import RequestContext as EngineContext
from resolvers.loaders import ShopLoaders
from upstream_clients import ShopClients

RequestContext = EngineContext[ShopClients, ShopLoaders]

__all__ = ["RequestContext"]
