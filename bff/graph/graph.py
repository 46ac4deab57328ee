"""`Graph`: what the gateway serves, as one value handed to `create_app(settings, graph)`.

A graph is a graphql-core schema whose fields resolve through the graph's services, and the
classes that make a request's clients and loaders (`bff.graph.services`). The engine imports
no graph: the shop is one (`graph: shop`), a user's package another (`graph:
package.module:attribute`), OpenAPI sources a third, and `Graph.combine` joins them with the
engine's own fields into the one schema a gateway runs.

    graph = Graph.from_strawberry(strawberry.Schema(query=Query), clients=MyClients,
                                  loaders=MyLoaders)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLDeferDirective,
    GraphQLDirective,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    print_schema,
    specified_directives,
)

from bff.auth import Principal
from bff.auth.issuing import TokenService
from bff.config import ConfigError
from bff.graph.context import RequestContext
from bff.graph.loader import BatchHook
from bff.graph.services import Clients, Loaders
from bff.upstream import UpstreamPool


@dataclass(frozen=True, eq=False)
class Graph:
    """A schema and the services behind it."""

    schema: GraphQLSchema
    clients: type[Clients] = Clients
    loaders: type[Loaders] = Loaders
    extra_upstreams: frozenset[str] = frozenset()  # called without a declared client
    name: str = "graph"
    notes: tuple[str, ...] = field(default=(), compare=False)  # start-up warnings to log

    @classmethod
    def from_strawberry(
        cls,
        schema: Any,
        *,
        clients: type[Clients] = Clients,
        loaders: type[Loaders] = Loaders,
        upstreams: Iterable[str] = (),
        name: str = "graph",
    ) -> Graph:
        """A graph from a `strawberry.Schema` whose resolvers use `clients` and `loaders`."""
        from bff.graph.strawberry import graphql_schema_of

        return cls(graphql_schema_of(schema), clients, loaders, frozenset(upstreams), name)

    @property
    def upstreams(self) -> frozenset[str]:
        """The upstreams this graph calls: each must be configured under `upstreams`."""
        return self.clients.upstreams() | self.extra_upstreams

    def context(
        self,
        principal: Principal,
        pools: Mapping[str, UpstreamPool],
        *,
        request_id: str = "",
        tokens: TokenService | None = None,
        observe: BatchHook | None = None,
        client_address: str = "",
    ) -> RequestContext[Any, Any]:
        """The context of one request: clients and loaders made as resolvers ask for them."""
        clients = self.clients(pools, principal.identity_headers())
        loaders = self.loaders(clients, observe)
        return RequestContext(
            principal, clients, loaders, pools, request_id, tokens, client_address
        )

    def sdl(self) -> str:
        return print_schema(self.schema)

    @classmethod
    def combine(cls, graphs: Sequence[Graph]) -> Graph:
        """One graph of several: their root fields side by side, their types together.

        At most one may bring typed clients and loaders (a code-first graph); the others
        (sources, the engine's fields) reach their upstreams through `ctx.pools` and
        `Loaders.keyed`. Two parts defining one root field or one type name is a
        `ConfigError` naming both."""
        graphs = [g for g in graphs if g.schema.query_type is not None or g.schema.mutation_type]
        if len(graphs) == 1 and declares_served_directives(graphs[0].schema):
            return graphs[0]
        typed = [g for g in graphs if g.clients is not Clients or g.loaders is not Loaders]
        if len(typed) > 1:
            names = ", ".join(g.name for g in typed)
            raise ConfigError([f"graph: only one code-first graph may be served ({names})"])
        base = typed[0] if typed else graphs[0]
        extra = frozenset().union(*(g.upstreams for g in graphs))
        notes = tuple(note for g in graphs for note in g.notes)
        schema = merge_schemas([(g.name, g.schema) for g in graphs])
        return cls(schema, base.clients, base.loaders, extra, base.name, notes)


# Directives every served schema declares beyond the specified ones: `@defer` (incremental
# delivery over multipart, SPEC section 14).
SERVED_DIRECTIVES: tuple[GraphQLDirective, ...] = (GraphQLDeferDirective,)


def declares_served_directives(schema: GraphQLSchema) -> bool:
    return all(schema.get_directive(d.name) is not None for d in SERVED_DIRECTIVES)


def merge_schemas(parts: Sequence[tuple[str, GraphQLSchema]]) -> GraphQLSchema:
    """A schema holding every part's root fields and types (the same instances)."""
    problems: list[str] = []
    roots: dict[str, dict[str, GraphQLField]] = {"Query": {}, "Mutation": {}}
    owners: dict[tuple[str, str], str] = {}
    types: dict[str, tuple[str, GraphQLNamedType]] = {}
    directives = {d.name: d for d in (*specified_directives, *SERVED_DIRECTIVES)}
    strawberry_schema = None
    for part, schema in parts:
        strawberry_schema = strawberry_schema or getattr(schema, "_strawberry_schema", None)
        for root, type_ in (("Query", schema.query_type), ("Mutation", schema.mutation_type)):
            for name, root_field in (type_.fields if type_ else {}).items():
                other = owners.get((root, name))
                if other is not None:
                    problems.append(f"{root}.{name}: defined by both {other} and {part}")
                owners[(root, name)] = part
                roots[root][name] = root_field
        rooted = {schema.query_type, schema.mutation_type, schema.subscription_type}
        for name, named in schema.type_map.items():
            if named in rooted or name.startswith("__"):
                continue
            seen = types.get(name)
            if seen is not None and seen[1] is not named:
                problems.append(f"type {name}: defined by both {seen[0]} and {part}")
            types.setdefault(name, (part, named))
        for directive in schema.directives:
            directives.setdefault(directive.name, directive)
    if problems:
        raise ConfigError(problems)
    query = GraphQLObjectType("Query", roots["Query"]) if roots["Query"] else None
    mutation = GraphQLObjectType("Mutation", roots["Mutation"]) if roots["Mutation"] else None
    if query is None:
        raise ConfigError(["graph: the graph and its sources define no query field"])
    merged = GraphQLSchema(
        query,
        mutation,
        types=[named for _, named in types.values()],
        directives=list(directives.values()),
    )
    if strawberry_schema is not None:  # strawberry's `info.schema` reads it
        merged._strawberry_schema = strawberry_schema  # type: ignore[attr-defined]
    return merged
