"""Link fields (`links[]`): checked against the documents, then added to generated types.

Every check names the link (`links[0].key`) and, where it helps, the place in the document
(`orders.yaml #/paths/~1orders/get`); the first problem of a link is reported, the others of
the config still are.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, get_nullable_type

from bff.config.source_models import LinkConfig
from bff.graph.fields import batch_field
from bff.limits.analysis import LIST_SIZE
from bff.sources.calls import Argument, Call
from bff.sources.document import pointer_text
from bff.sources.links import LinkLoader, LinkPlan, link_form
from bff.sources.loaded import LoadedSource
from bff.sources.names import graphql_name, type_name
from bff.sources.types import Registry


def _is_name(text: str) -> bool:
    return graphql_name(text) == text


def add_link(
    index: int,
    link: LinkConfig,
    loaded: Mapping[str, LoadedSource],
    registry: Registry,
    problems: list[str],
) -> None:
    """Check `links[index]` and add its field to its type; or append its first problem."""
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
    records = registry.records
    item_object = get_nullable_type(item_type)
    item_record = None
    if isinstance(item_object, GraphQLObjectType):
        item_record = records.classes[item_object.name]
    if not path_argument and item_record is None:
        problems.append(
            f"{where}.match: the items of {link.operation} ({pointer_text(item_at_flat)}) "
            "are not objects"
        )
        return
    target = GraphQLList(item_type) if not path_argument or link.list else item_type
    call = Call(
        source.config.upstream,
        operation.method,
        operation.path,
        (Argument(link.argument, parameter.name, parameter.location),),
        dict(source.config.headers),
        null_on_404=path_argument,
        decode=records.link_decoder(target, link.result, source.config.upstream),
    )
    read_match = None
    if not path_argument:
        assert link.match is not None and isinstance(item_object, GraphQLObjectType)
        read_match = attrgetter(records.attributes[item_object.name][link.match])
    plan = LinkPlan(
        f"{link.type}.{link.field}",
        attrgetter(records.attributes[link.type][link.key]),
        call,
        call.arguments[0],
        path_argument,
        read_match,
        item_record,
        link.list,
        source.config.max_batch,
    )
    loader_class = type(f"{link.type}{type_name(link.field)}Loader", (LinkLoader,), {})
    made = batch_field(field_type, link_form(plan, loader_class, source.access))
    if listed:
        made.extensions[LIST_SIZE] = ""  # costs `limits.default_list_size`
    spec.fields[spec.names.take(link.field)] = made
