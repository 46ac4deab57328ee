"""Root fields of a source: one per exposed operation (SPEC section 12, "Operations").

`GET` operations go on `Query`, the others on `Mutation`, named by their `operationId`. Path
and query parameters become arguments of the same name (required ones non-null, an array
parameter a list), a JSON request body the argument `input`. Each field is a `batch_field`
(its parents are the one root), so the execution fast path runs it natively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    get_nullable_type,
)

from bff.errors import BadUpstreamResponse, BffError
from bff.graph.context import AnyContext
from bff.graph.fields import batch_field
from bff.limits.analysis import LIST_SIZE
from bff.sources.access import SourceAccess
from bff.sources.calls import Argument, Call
from bff.sources.names import NameSet, graphql_name, type_name
from bff.sources.operations import Operation
from bff.sources.types import Types, is_object_list

BODY_ARGUMENT = "input"
BOUNDS = ("first", "limit")  # arguments bounding a list, in the cost


def root_field(
    operation: Operation,
    types: Types,
    upstream: str,
    headers: Mapping[str, str],
    access: SourceAccess,
) -> GraphQLField:
    """The field serving `operation`."""
    base = type_name(operation.operation_id)
    output = types.output(operation.answer, operation.answer_where, base + "Response")
    names = NameSet()
    if operation.body is not None:
        names.taken.add(BODY_ARGUMENT)
    args: dict[str, GraphQLArgument] = {}
    routed: list[Argument] = []
    for parameter in operation.parameters:
        if parameter.location not in ("path", "query"):
            continue  # headers come from `sources[].headers`; cookies are never sent
        at = (*parameter.where, "schema")
        gql: Any = types.input(parameter.schema, at, base + type_name(parameter.name))
        schema, _ = types.flatten(parameter.schema, at)
        default = schema.get("default")
        simple = not isinstance(get_nullable_type(gql), GraphQLList | GraphQLEnumType)
        has_default = default is not None and simple and types.kind(schema) != "json"
        if parameter.required and not has_default:
            gql = GraphQLNonNull(gql)
        name = names.take(graphql_name(parameter.name))
        args[name] = (
            GraphQLArgument(gql, default_value=default) if has_default else GraphQLArgument(gql)
        )
        routed.append(Argument(name, parameter.name, parameter.location))
    if operation.body is not None:
        body_type: Any = types.input(operation.body.schema, operation.body.where, base + "Input")
        args[BODY_ARGUMENT] = GraphQLArgument(
            GraphQLNonNull(body_type) if operation.body.required else body_type
        )
        routed.append(Argument(BODY_ARGUMENT, BODY_ARGUMENT, "body"))
    is_object = isinstance(output, GraphQLObjectType)
    call = Call(
        upstream,
        operation.method,
        operation.path,
        tuple(routed),
        dict(headers),
        null_on_404=operation.method == "GET" and is_object,
        decode=types.registry.records.decoder(output, upstream),
    )

    # what the answer must be (its fields are read from it): else the upstream broke its contract
    shape: type | None = list if isinstance(output, GraphQLList) else None
    if isinstance(output, GraphQLObjectType):
        shape = types.registry.records.classes[output.name]

    async def form(ctx: AnyContext, parents: Any, **arguments: Any) -> list[Any]:
        refused = access.refusal(ctx.principal)
        if refused is not None:
            return [refused] * len(parents)
        try:
            value = await call.send(ctx.pools[upstream], ctx.clients.headers, arguments)
        except BffError as error:
            return [error] * len(parents)
        if shape is not None and value is not None and type(value) is not shape:
            return [BadUpstreamResponse(upstream)] * len(parents)
        return [value] * len(parents)

    made = batch_field(output, form, args=args, description=operation.description)
    bound = next((name for name in BOUNDS if name in args), None)
    if bound is not None:
        made.extensions[LIST_SIZE] = bound
        page = types.registry.objects.get(getattr(output, "name", ""))
        if page is not None and page.type is output:  # a page: its lists are counted here
            for inner in page.fields.values():  # (not `output.fields`: links come later)
                inner.extensions.pop(LIST_SIZE, None)
    elif is_object_list(output):
        made.extensions[LIST_SIZE] = ""
    return made
