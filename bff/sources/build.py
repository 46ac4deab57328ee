"""`sources_graph`: the `sources` and `links` of a config as one `Graph` (SPEC section 12).

Every source's document is read once at start-up; its exposed operations become root fields,
the schemas they reach become types, and the links add fields to those types. Problems are
collected and raised together as one `ConfigError`, each naming the source or link, the
document and the place in it (a JSON pointer). Operations left out become the graph's
`notes`, one per operationId, which the gateway logs at start and `bff check-config` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
)

from bff.config import ConfigError, Settings
from bff.config.source_models import LinkConfig, SourceConfig
from bff.graph.fields import batch_field
from bff.graph.graph import Graph
from bff.limits.analysis import LIST_SIZE
from bff.sources.access import SourceAccess, requirement_of
from bff.sources.calls import Argument, Call
from bff.sources.document import Document, DocumentError, pointer_text
from bff.sources.links import LinkLoader, LinkPlan, link_form
from bff.sources.names import graphql_name, type_name
from bff.sources.operations import Operations, read_operations
from bff.sources.roots import root_field
from bff.sources.types import Registry, Types

GRAPH_NAME = "sources"


@dataclass
class Loaded:
    """One source with its document read."""

    index: int
    config: SourceConfig
    document: Document
    operations: Operations
    types: Types
    access: SourceAccess

    @property
    def label(self) -> str:
        return f"sources[{self.index}] ({self.config.name}, {self.config.openapi.name})"


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


def load_sources(settings: Settings, registry: Registry, problems: list[str]) -> dict[str, Loaded]:
    loaded: dict[str, Loaded] = {}
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
        loaded[config.name] = Loaded(index, config, document, operations, types, access)
    return loaded


def add_roots(
    source: Loaded,
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


def _is_name(text: str) -> bool:
    return graphql_name(text) == text


def add_link(
    index: int,
    link: LinkConfig,
    loaded: Mapping[str, Loaded],
    registry: Registry,
    problems: list[str],
) -> None:
    where = f"links[{index}]"
    source = loaded.get(link.source)
    if source is None:
        problems.append(f"{where}.source: no source {link.source!r}")
        return
    spec = registry.objects.get(link.type)
    if spec is None:
        known = ", ".join(sorted(registry.objects)) or "none"
        problems.append(f"{where}.type: no generated type {link.type!r} (types: {known})")
        return
    document_name = f"{loaded[spec.source].config.openapi.name}"
    if not _is_name(link.field):
        problems.append(f"{where}.field: {link.field!r} is not a GraphQL name")
        return
    if link.field in spec.fields:
        problems.append(f"{where}.field: {link.type} already has a field {link.field!r}")
        return
    if link.key not in spec.properties:
        problems.append(
            f"{where}.key: {link.type} ({document_name} {pointer_text(spec.where)}) has no "
            f"property {link.key!r}"
        )
        return
    operation = source.operations.served.get(link.operation)
    if operation is None:
        why = source.operations.skipped.get(link.operation)
        detail = f" (left out: {why})" if why else ""
        problems.append(
            f"{where}.operation: source {link.source} has no operation {link.operation!r}{detail}"
        )
        return
    op_at = f"{source.config.openapi.name} {pointer_text(operation.where)}"
    parameter = operation.parameter(link.argument)
    if parameter is None:
        problems.append(
            f"{where}.argument: operation {link.operation} ({op_at}) has no path or query "
            f"parameter {link.argument!r}"
        )
        return
    for other in operation.parameters:
        if other is not parameter and other.required and other.location in ("path", "query"):
            problems.append(
                f"{where}.operation: {link.operation} ({op_at}) also requires parameter "
                f"{other.name!r} ({pointer_text(other.where)}), which a link cannot supply"
            )
            return
    if operation.body is not None and operation.body.required:
        problems.append(f"{where}.operation: {link.operation} ({op_at}) requires a body")
        return
    path_argument = parameter.location == "path"
    types = source.types
    item_node, item_at = operation.answer, operation.answer_where
    answer, answer_at = types.flatten(item_node, item_at)
    if link.result is not None:
        properties = answer.get("properties") or {}
        if link.result not in properties:
            problems.append(
                f"{where}.result: the answer of {link.operation} "
                f"({pointer_text(answer_at)}) has no property {link.result!r}"
            )
            return
        item_node, item_at = properties[link.result], (*answer_at, "properties", link.result)
        answer, answer_at = types.flatten(item_node, item_at)
    if not path_argument or link.list:
        if types.kind(answer) != "array":
            problems.append(
                f"{where}.result: {pointer_text(answer_at)} is not a list; name the property "
                "holding the items in `result`"
            )
            return
        item_node, item_at = answer.get("items", {}), (*answer_at, "items")
    item, item_at_flat = types.flatten(item_node, item_at)
    if not path_argument:
        if link.match is None:
            problems.append(f"{where}.match: needed with a query parameter argument")
            return
        if link.match not in (item.get("properties") or {}):
            problems.append(
                f"{where}.match: the items of {link.operation} ({pointer_text(item_at_flat)}) "
                f"have no property {link.match!r}"
            )
            return
    item_type = types.output(item_node, item_at, type_name(link.operation) + "Item")
    many_keys = types.kind(spec.properties[link.key]) == "array"  # a list of keys: a list
    listed = link.list or many_keys
    field_type: Any = GraphQLList(GraphQLNonNull(item_type)) if listed else item_type
    call = Call(
        source.config.upstream,
        operation.method,
        operation.path,
        (Argument(link.argument, parameter.name, parameter.location),),
        dict(source.config.headers),
        null_on_404=path_argument,
    )
    plan = LinkPlan(
        f"{link.type}.{link.field}",
        link.key,
        call,
        call.arguments[0],
        path_argument,
        link.result,
        link.match,
        link.list,
        source.config.max_batch,
    )
    loader_class = type(f"{link.type}{type_name(link.field)}Loader", (LinkLoader,), {})
    made = batch_field(field_type, link_form(plan, loader_class), checks=source.access.checks)
    if listed:
        made.extensions[LIST_SIZE] = ""  # costs `limits.default_list_size`
    spec.fields[spec.names.take(link.field)] = made
