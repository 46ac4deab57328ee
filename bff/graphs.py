"""Which graph a gateway serves: the `graph` key, joined with the engine's own fields.

`graph: shop` (the default) is the bundled sample graph, `graph: none` serves no code-first
graph (only `sources`), and `graph: package.module:attribute` imports a user's `Graph`.
`served_graph` joins it with the graph of the OpenAPI `sources` (`bff.sources`) and the
engine's token mutations (when an `auth` upstream is configured) and checks that every
upstream the result calls is configured: only those are required.
"""

from __future__ import annotations

import importlib

from bff.config import ConfigError, Settings
from bff.graph import Graph
from bff.graph.credentials import AUTH_UPSTREAM
from bff.graph.token_fields import token_graph
from bff.sources import sources_graph

SHOP = "schema:graph"  # the bundled sample graph (the top-level schema package)


def load_graph(spec: str) -> Graph | None:
    """The graph `spec` names (`None` for `none`); a `ConfigError` at `graph` otherwise."""
    if spec == "none":
        return None
    module_name, _, attribute = (SHOP if spec == "shop" else spec).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError([f"graph: cannot import {module_name} ({error})"]) from None
    graph = getattr(module, attribute, None)
    if not isinstance(graph, Graph):
        found = "nothing" if graph is None else type(graph).__name__
        raise ConfigError([f"graph: {spec} is {found}, not a bff.graph.Graph"])
    return graph


def served_graph(
    settings: Settings, graph: Graph | None = None, *, require_upstreams: bool = True
) -> Graph:
    """The whole graph a gateway with `settings` serves (`graph` replaces the `graph` key);
    `require_upstreams=False` for commands that only read the schema (`bff persist`)."""
    parts = [graph] if graph is not None else [g for g in [load_graph(settings.graph)] if g]
    if settings.sources:
        parts.append(sources_graph(settings))
    if not parts:
        raise ConfigError(["graph: none, and no sources: there is nothing to serve"])
    if AUTH_UPSTREAM in settings.upstreams:
        parts.append(token_graph())
    served = Graph.combine(parts)
    missing = sorted(served.upstreams - set(settings.upstreams))
    if missing and require_upstreams:
        names = ", ".join(missing)
        raise ConfigError([f"upstreams: missing {names} (the graph calls them)"])
    return served
