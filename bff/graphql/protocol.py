"""GraphQL over HTTP: reading a GraphQL request from a GET query string or a POST body.

A request that is not a well-formed GraphQL request at all (bad JSON, no `query`) is a
`MalformedRequest`, answered 400 (or the status it names) under either media type; the media
type of the answer is chosen in `bff.rendering.media`.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

JSON = "application/json"


class MalformedRequest(Exception):
    """Not a GraphQL-over-HTTP request: answered 400, or 405/415 when `status` says so."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class GraphQLRequest(msgspec.Struct, frozen=True):
    """One per request: a struct, built in C (see `bff.upstream.response.UpstreamResponse`)."""

    query: str | None  # None only with an APQ hash (`extensions.persistedQuery`)
    operation_name: str | None
    variables: dict[str, Any] | None
    extensions: dict[str, Any] | None


def _json_param(raw: Any, name: str) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequest(f"{name} is not valid JSON") from exc
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedRequest(f"{name} must be a JSON object")
    return raw


def _from_mapping(data: Any) -> GraphQLRequest:
    if not isinstance(data, dict):
        raise MalformedRequest("The request body must be a JSON object")
    query = data.get("query")
    extensions = _json_param(data.get("extensions"), "extensions")
    if not isinstance(query, str) or not query.strip():
        if query not in (None, "") or not extensions or "persistedQuery" not in extensions:
            raise MalformedRequest("The request has no query")
        query = None  # an APQ request naming its document by hash
    operation_name = data.get("operationName")
    if operation_name == "":
        operation_name = None
    if operation_name is not None and not isinstance(operation_name, str):
        raise MalformedRequest("operationName must be a string")
    return GraphQLRequest(
        query=query,
        operation_name=operation_name,
        variables=_json_param(data.get("variables"), "variables"),
        extensions=extensions,
    )


async def read_request(
    request: Request, method: str | None = None, content_type: str | None = None
) -> GraphQLRequest:
    """The GraphQL request carried by a GET query string or a POST JSON body; `method` and
    `content_type` as the caller read them already (else from the request)."""
    if (method or request.method) == "GET":
        return _from_mapping(dict(request.query_params))
    if content_type is None:
        content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != JSON:
        raise MalformedRequest(f"Content-Type must be {JSON}", 415)
    body = await read_body(request.receive)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest("The request body is not valid JSON") from exc
    return _from_mapping(data)


async def read_body(receive: Receive) -> bytes:
    """The whole body, from the receive channel itself: Starlette's `Request.body` reads it
    through an async generator and `aclosing`, a dozen Python calls for what is nearly
    always one message. A client gone midway is Starlette's `ClientDisconnect`, as there."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                if not chunks:
                    return body
                chunks.append(body)
                return b"".join(chunks)
            chunks.append(body)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
