"""Every error body the gateway sends, rendered here and nowhere else.

GraphQL errors are rendered by allow-list: an error raised from `bff.errors` keeps its public
message and `extensions.code`; a GraphQL request error (syntax, validation, variables) is the
client's and says so as `BAD_USER_INPUT`; anything else is a bug or a surprise: the client sees
`INTERNAL_SERVER_ERROR` and the log gets the whole error with the request id. A masked error
carries the trace id in `extensions.traceId` (and its log line too), so a support ticket leads
to the trace.

HTTP error responses (a stage refusing a request, the errors stage's masked 500, a request that
is not GraphQL at all) carry the same `{"errors": [{"message", "extensions": {"code"}}]}` body,
in the media type the client accepts, so both doors of the gateway agree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bff.errors import BadUserInput, BffError, NotFound, error_body
from bff.rendering.media import GRAPHQL_RESPONSE, JSON, NotAcceptable, negotiate
from bff.request_id import current_request_id

log = logging.getLogger("bff.errors")

INTERNAL_MESSAGE = "Internal server error"


def format_error(error: GraphQLError, trace_id: str | None = None) -> dict[str, Any]:
    """One GraphQL error as the client may see it."""
    original = error.original_error
    body: dict[str, Any]
    masked = False
    if isinstance(original, BffError):
        body = {"message": original.public_message, "extensions": original.extensions}
        if not original.expose:
            log_internal(error, trace_id)
            masked = True
    elif original is None or (error.path is None and isinstance(original, GraphQLError)):
        # A request error (syntax, validation, variable coercion): the client's to fix.
        body = {"message": error.message, "extensions": {"code": "BAD_USER_INPUT"}}
    else:
        log_internal(error, trace_id)
        body = {"message": INTERNAL_MESSAGE, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        masked = True
    if masked and trace_id:
        body["extensions"] = {**body["extensions"], "traceId": trace_id}
    if error.locations:
        body["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path is not None:
        body["path"] = error.path
    return body


def format_errors(
    errors: Iterable[GraphQLError], trace_id: str | None = None
) -> list[dict[str, Any]]:
    return [format_error(e, trace_id) for e in errors]


def log_internal(error: GraphQLError, trace_id: str | None = None) -> None:
    """The whole masked error, with the request id a client can quote from `X-Request-Id`
    and the trace id that leads to its trace."""
    original = error.original_error or error
    log.error(
        "unexpected error in %s (request %s, trace %s)",
        ".".join(str(p) for p in error.path or ()) or "the request",
        current_request_id(),
        trace_id or "-",
        exc_info=(type(original), original, original.__traceback__),
        extra={"trace_id": trace_id},
    )


def errors_response(
    errors: list[dict[str, Any]],
    status: int,
    media_type: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """`{"errors": [...]}` (already rendered) with `status`, as `media_type`."""
    return Response(orjson.dumps({"errors": errors}), status, headers, media_type=media_type)


def request_errors_response(errors: Iterable[GraphQLError], media_type: str) -> Response:
    """A GraphQL request error (nothing executed): 400 under `application/graphql-response+json`,
    200 under the legacy `application/json`, as the GraphQL-over-HTTP spec says."""
    status = 400 if media_type == GRAPHQL_RESPONSE else 200
    return errors_response(format_errors(errors), status, media_type)


def error_response(
    error: BffError,
    accept: str | None = None,
    *,
    status: int | None = None,
    media_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A `BffError` as an HTTP response: its status (or `status`), in `media_type` or else the
    media type the `accept` header asks for (`application/json` when it asks for neither)."""
    if media_type is None:
        try:
            media_type = negotiate(accept)
        except NotAcceptable:
            media_type = JSON
    all_headers = dict(headers or {})
    if error.status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
    return errors_response([error_body(error)], status or error.status, media_type, all_headers)


def http_exception_response(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route 404, wrong method 405, a missing static file)
    with the gateway's error body instead of plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    error: BffError
    if status == 404:
        error = NotFound()
    elif 400 <= status < 500:
        detail = exc.detail if isinstance(exc, HTTPException) else ""
        error = BadUserInput(detail or "Bad request")
    else:
        error = BffError()
    return error_response(error, request.headers.get("accept"), status=status, headers=headers)
