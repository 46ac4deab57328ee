"""The public API for writing a graph: what a team imports to put its own services behind bff.

A code-first service is one Python file: its records, its client (`ServiceClient`), its
loader (`BatchLoader`), declared on the graph's `Clients` and `Loaders` (`client`,
`loader`), and its fields (`batched`, `requires`; or `batch_field`/`read_field` on plain
graphql-core types). `Graph` holds the schema and those classes; `create_app(settings, graph)`
or `graph: package.module:attribute` serves it. README "Your own services" walks through one.
"""

from __future__ import annotations

from bff.graph.batch import batched
from bff.graph.client import ServiceClient, id_list
from bff.graph.context import RequestContext
from bff.graph.declare import field, mutation
from bff.graph.fields import BatchResolver, batch_field, read_field
from bff.graph.graph import Graph
from bff.graph.loader import BatchLoader, KeyLoader
from bff.graph.permissions import Requires, requires
from bff.graph.services import Clients, Loaders, client, loader

__all__ = [
    "BatchLoader",
    "BatchResolver",
    "Clients",
    "Graph",
    "KeyLoader",
    "Loaders",
    "RequestContext",
    "Requires",
    "ServiceClient",
    "batch_field",
    "batched",
    "client",
    "field",
    "id_list",
    "loader",
    "mutation",
    "read_field",
    "requires",
]
