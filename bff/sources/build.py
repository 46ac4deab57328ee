"""`sources_graph`: the `sources` and `links` of a config as one `Graph` (SPEC section 12).

Every source's document is read once at start-up; its exposed operations become root fields,
the schemas they reach become types, and the links add fields to those types. Problems are
collected and raised together as one `ConfigError`, each naming the source or link, the
document and the place in it (a JSON pointer). Operations left out become the graph's
`notes`, one per operationId, which the gateway logs at start and `bff check-config` prints.
"""

from __future__ import annotations

from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema

from bff.config import ConfigError, Settings
from bff.graph.graph import Graph
from bff.sources.access import SourceAccess, requirement_of
from bff.sources.document import Document, DocumentError
from bff.sources.joins import add_link
from bff.sources.loaded import LoadedSource
from bff.sources.names import graphql_name
from bff.sources.operations import read_operations
from bff.sources.roots import root_field
from bff.sources.types import Registry, Types

GRAPH_NAME = "sources"


def sources_graph(settings: Settings) -> Graph:
    """The graph of `settings.sources` joined by `settings.links`; `ConfigError` if unusable."""
    problems: list[str] = []
    registry = Registry()
    loaded = load_sources(settings, registry, problems)
    roots: dict[str, dict[str, GraphQLField]] = {"Query": {}, "Mutation": {}}
    owners: dict[tuple[str, str], str] = {}
    notes: list[str] = []
    for source in loaded.values():
        try:
            add_roots(source, roots, owners, notes, problems)
        except DocumentError as error:
            problems.append(f"{source.label}: {error}")
    for index, link in enumerate(settings.links):
        try:
            add_link(index, link, loaded, registry, problems)
        except DocumentError as error:
            problems.append(f"links[{index}] ({link.type}.{link.field}): {error}")
    problems.extend(registry.problems)
    if problems:
        raise ConfigError(problems)
    query = GraphQLObjectType("Query", roots["Query"])
    mutation = GraphQLObjectType("Mutation", roots["Mutation"]) if roots["Mutation"] else None
    types = [spec.type for spec in registry.objects.values()]
    schema = GraphQLSchema(query, mutation, types=types)
    upstreams = frozenset(s.config.upstream for s in loaded.values())
    return Graph(schema, extra_upstreams=upstreams, name=GRAPH_NAME, notes=tuple(notes))


def load_sources(
    settings: Settings, registry: Registry, problems: list[str]
) -> dict[str, LoadedSource]:
    loaded: dict[str, LoadedSource] = {}
    known = ", ".join(sorted(settings.upstreams)) or "none are configured"
    for index, config in enumerate(settings.sources):
        where = f"sources[{index}]"
        if config.name in loaded:
            problems.append(f"{where}.name: duplicate source name {config.name!r}")
            continue
        if config.upstream not in settings.upstreams:
            problems.append(
                f"{where}.upstream: no upstream {config.upstream!r}; use a key of upstreams "
                f"({known})"
            )
            continue
        try:
            document = Document.load(config.openapi)
            operations = read_operations(document, config.headers)
        except DocumentError as error:
            problems.append(f"{where}.openapi ({config.name}, {config.openapi.name}): {error}")
            continue
        types = Types(document, config.name, config.prefix, registry)
        access = SourceAccess(requirement_of(config.auth))
        loaded[config.name] = LoadedSource(index, config, document, operations, types, access)
    return loaded


def add_roots(
    source: LoadedSource,
    roots: dict[str, dict[str, GraphQLField]],
    owners: dict[tuple[str, str], str],
    notes: list[str],
    problems: list[str],
) -> None:
    config, operations = source.config, source.operations
    wanted = config.operations
    if wanted is not None:
        for position, op_id in enumerate(wanted):
            if op_id not in operations.served and op_id not in operations.skipped:
                known = ", ".join(sorted([*operations.served, *operations.skipped]))
                problems.append(
                    f"sources[{source.index}].operations[{position}]: {config.openapi.name} "
                    f"has no operation {op_id!r} (it has: {known or 'none'})"
                )
    for op_id, why in operations.skipped.items():
        if wanted is None or op_id in wanted:
            notes.append(f"sources.{config.name}: operation {op_id} left out: {why}")
    for op_id, operation in operations.served.items():
        if wanted is not None and op_id not in wanted:
            continue
        root = "Query" if operation.method == "GET" else "Mutation"
        name = graphql_name(op_id)  # `get-pet` -> `get_pet` (docs/sources.md, Names)
        other = owners.get((root, name))
        if other is not None:
            problems.append(
                f"{root}.{name}: defined by both sources {other} and {config.name}; narrow one "
                "with `operations`"
            )
            continue
        owners[(root, name)] = config.name
        roots[root][name] = root_field(
            operation, source.types, config.upstream, config.headers, source.access
        )
