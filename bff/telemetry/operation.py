"""The GraphQL operation seam: one span per operation and what the access log and metering
learn about it.

`wrap_execute` wraps `GraphQLExecutor.execute` (the executor applies it once, when built).
Per document and operation name it computes once, and caches: the span name the semantic
conventions ask for (`query Dashboard`), its attributes, the document's sha256 and the
schema coordinates (`Order.user`) the operation selects, for metering.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    visit,
)

from bff.errors import BffError
from bff.telemetry.current import current_observed
from bff.telemetry.tracing import current_span

CACHE_SIZE = 512
MAX_ERROR_CODES = 10

Execute = Callable[..., Awaitable[ExecutionResult]]


@dataclass(frozen=True, slots=True)
class OperationInfo:
    name: str | None
    span_name: str
    document_hash: str
    fields: tuple[str, ...]
    attributes: dict[str, Any]


class _FieldCollector(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.fields: set[str] = set()

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.type_info.get_parent_type()
        name = node.name.value
        if parent is not None and not name.startswith("__"):
            self.fields.add(f"{get_named_type(parent).name}.{name}")


def used_fields(schema: GraphQLSchema, document: DocumentNode) -> tuple[str, ...]:
    """The schema coordinates (`Type.field`) a document selects, sorted."""
    type_info = TypeInfo(schema)
    collector = _FieldCollector(type_info)
    visit(document, TypeInfoVisitor(type_info, collector))
    return tuple(sorted(collector.fields))


class Operations:
    """`OperationInfo` per (document, operation name), bounded like the executor's cache."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self._cache: OrderedDict[tuple[int, str | None], tuple[DocumentNode, OperationInfo]] = (
            OrderedDict()
        )

    def info(self, document: DocumentNode, operation_name: str | None) -> OperationInfo:
        key = (id(document), operation_name)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is document:
            return hit[1]
        info = self._describe(document, operation_name)
        self._cache[key] = (document, info)  # the document is held: its id stays unique
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return info

    def _describe(self, document: DocumentNode, operation_name: str | None) -> OperationInfo:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        chosen = next(
            (
                o
                for o in operations
                if operation_name is None or (o.name and o.name.value == operation_name)
            ),
            operations[0] if operations else None,
        )
        kind = chosen.operation.value if chosen is not None else "query"
        name = chosen.name.value if chosen is not None and chosen.name else None
        body = document.loc.source.body if document.loc is not None else ""
        digest = hashlib.sha256(body.encode()).hexdigest()
        attributes: dict[str, Any] = {
            "graphql.operation.type": kind,
            "graphql.document.hash": digest,
        }
        if name is not None:
            attributes["graphql.operation.name"] = name
        return OperationInfo(
            name=name,
            span_name=f"{kind} {name}" if name else kind,
            document_hash=digest,
            fields=used_fields(self.schema, document),
            attributes=attributes,
        )


def error_codes(errors: list[GraphQLError]) -> list[str]:
    """The `extensions.code` of each error, as masking will render it, without repeats."""
    codes: list[str] = []
    for error in errors:
        original = error.original_error
        if isinstance(original, BffError):
            code = original.code
        elif original is None or (error.path is None and isinstance(original, GraphQLError)):
            code = "BAD_USER_INPUT"
        else:
            code = "INTERNAL_SERVER_ERROR"
        if code not in codes and len(codes) < MAX_ERROR_CODES:
            codes.append(code)
    return codes


def wrap_execute(execute: Execute) -> Execute:
    """`execute` inside an operation span, noting the operation in the request's state."""

    async def observed_execute(prepared: Any, **kw: Any) -> ExecutionResult:
        observed = current_observed()
        if observed is None:
            return await execute(prepared, **kw)
        telemetry = observed.telemetry
        info = telemetry.operations.info(prepared.document, kw.get("operation_name"))
        state = observed.state
        state.operation, state.document_hash = info.name, info.document_hash
        observed.fields = info.fields
        tracing = telemetry.tracing
        if tracing is not None:
            parent = current_span()
            if parent.is_recording():
                scope = tracing.span(info.span_name, attributes=info.attributes, parent=parent)
                with scope as span:
                    result = await _execute_noting(execute, prepared, kw, state.error_codes)
                    span.set_attribute("bff.graphql.error_count", len(result.errors or ()))
                return result
        return await _execute_noting(execute, prepared, kw, state.error_codes)

    return observed_execute


async def _execute_noting(
    execute: Execute, prepared: Any, kw: Mapping[str, Any], codes: list[str]
) -> ExecutionResult:
    try:
        result = await execute(prepared, **kw)
    except Exception as exc:  # RequestErrors: variables the schema refuses
        codes.extend(error_codes(list(getattr(exc, "errors", ()))) or ["INTERNAL_SERVER_ERROR"])
        raise
    if result.errors:
        codes.extend(c for c in error_codes(list(result.errors)) if c not in codes)
    return result
