"""The operations of an OpenAPI document, as the gateway can call them.

An operation is served when it has an `operationId`, a 2xx answer with JSON, and every
required parameter is one the gateway can fill: path and query parameters become arguments,
header parameters may come from `sources[].headers`, and cookie parameters cannot be filled.
Every other operation is left out with one note naming it (`skipped`). A request body is used
when it offers JSON; an operation whose required body offers none is left out too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bff.sources.document import Document, DocumentError, Pointer, pointer_text

METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path | query | header | cookie
    required: bool
    schema: Any
    where: Pointer


@dataclass(frozen=True)
class Body:
    schema: Any
    required: bool
    where: Pointer


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    where: Pointer
    parameters: tuple[Parameter, ...]
    body: Body | None
    answer: Any  # the JSON schema of the 2xx answer
    answer_where: Pointer
    description: str | None = None

    def parameter(self, name: str) -> Parameter | None:
        for parameter in self.parameters:
            if parameter.name == name and parameter.location in ("path", "query"):
                return parameter
        return None


@dataclass
class Operations:
    """The served operations by operationId, and a note for each one left out."""

    served: dict[str, Operation] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # operationId -> why


def is_json(media_type: str) -> bool:
    kind = media_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def json_content(content: Any) -> tuple[str, Any] | None:
    if not isinstance(content, Mapping):
        return None
    for media_type, media in content.items():
        if isinstance(media_type, str) and is_json(media_type) and isinstance(media, Mapping):
            return media_type, media
    return None


def read_operations(document: Document, supplied_headers: Mapping[str, str]) -> Operations:
    found = Operations()
    paths = document.data.get("paths") or {}
    if not isinstance(paths, Mapping):
        raise DocumentError(("paths",), "paths must be a mapping")
    supplied = {name.lower() for name in supplied_headers}
    for path, item in paths.items():
        item, item_where = document.follow(item, ("paths", path))
        if not isinstance(item, Mapping):
            continue
        shared = item.get("parameters") or []
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping) or not operation.get("operationId"):
                continue
            where = ("paths", path, method)
            op_id = str(operation["operationId"])
            if op_id in found.served or op_id in found.skipped:
                raise DocumentError((*where, "operationId"), f"operationId {op_id} is used twice")
            parameters = _parameters(document, shared, (*item_where, "parameters"))
            parameters.update(_parameters(document, operation.get("parameters") or [], where))
            why = _unfillable(parameters.values(), supplied)
            answer = _answer(document, operation, where)
            if answer is None:
                why = why or "no 2xx answer offers JSON"
            body, body_why = _body(document, operation, where)
            why = why or body_why
            if why is not None or answer is None:
                found.skipped[op_id] = why or ""
                continue
            found.served[op_id] = Operation(
                op_id,
                method.upper(),
                str(path),
                where,
                tuple(parameters.values()),
                body,
                answer[0],
                answer[1],
                operation.get("summary") or operation.get("description"),
            )
    return found


def _parameters(document: Document, nodes: Any, where: Pointer) -> dict[tuple[str, str], Parameter]:
    found: dict[tuple[str, str], Parameter] = {}
    if not isinstance(nodes, list):
        raise DocumentError(where, "parameters must be a list")
    base = where if where[-1] == "parameters" else (*where, "parameters")
    for index, node in enumerate(nodes):
        at = (*base, index)
        param, _ = document.follow(node, at)
        if not isinstance(param, Mapping) or "name" not in param or "in" not in param:
            raise DocumentError(at, "a parameter needs `name` and `in`")
        location = param["in"]
        if location not in ("path", "query", "header", "cookie"):
            raise DocumentError((*at, "in"), f"unknown parameter location {location!r}")
        schema = param.get("schema")
        if schema is None:
            media = json_content(param.get("content"))
            schema = media[1].get("schema", {}) if media else {}
        required = bool(param.get("required")) or location == "path"
        name = str(param["name"])
        found[(name, location)] = Parameter(name, location, required, schema, at)
    return found


def _unfillable(parameters: Any, supplied: set[str]) -> str | None:
    for parameter in parameters:
        if not parameter.required:
            continue
        if parameter.location == "cookie":
            return (
                f"required cookie parameter {parameter.name} ({pointer_text(parameter.where)}) "
                "cannot be supplied"
            )
        if parameter.location == "header" and parameter.name.lower() not in supplied:
            return (
                f"required header {parameter.name} ({pointer_text(parameter.where)}) is not "
                "in sources[].headers"
            )
    return None


def _answer(
    document: Document, operation: Mapping[str, Any], where: Pointer
) -> tuple[Any, Pointer] | None:
    responses = operation.get("responses") or {}
    for status in sorted(map(str, responses)):
        if not (status.startswith("2") and len(status) == 3):
            continue
        at = (*where, "responses", status)
        response, response_at = document.follow(responses[status], at)
        media = json_content(response.get("content") if isinstance(response, Mapping) else None)
        if media is not None:
            return media[1].get("schema", {}), (*response_at, "content", media[0], "schema")
    return None


def _body(
    document: Document, operation: Mapping[str, Any], where: Pointer
) -> tuple[Body | None, str | None]:
    node = operation.get("requestBody")
    if node is None:
        return None, None
    body, at = document.follow(node, (*where, "requestBody"))
    if not isinstance(body, Mapping):
        raise DocumentError(at, "requestBody must be a mapping")
    required = bool(body.get("required"))
    media = json_content(body.get("content"))
    if media is None:
        return None, ("its required request body offers no JSON" if required else None)
    schema_at = (*at, "content", media[0], "schema")
    return Body(media[1].get("schema", {}), required, schema_at), None
