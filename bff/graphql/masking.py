"""Render GraphQL errors for clients by allow-list: only our own errors say what went wrong.

An error raised from `bff.errors` keeps its public message and `extensions.code`; a GraphQL
request error (syntax, validation, variables) is the client's and says so as `BAD_USER_INPUT`;
anything else is a bug or a surprise: the client sees `INTERNAL_SERVER_ERROR` and the log
gets the whole error with the request id. A masked error carries the trace id in
`extensions.traceId` (and its log line too), so a support ticket leads to the trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError

from bff.errors import BffError

log = logging.getLogger("bff.errors")

INTERNAL = {"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}


def format_error(
    error: GraphQLError, request_id: str = "", trace_id: str | None = None
) -> dict[str, Any]:
    original = error.original_error
    body: dict[str, Any]
    masked = False
    if isinstance(original, BffError):
        body = {"message": original.public_message, "extensions": original.extensions}
        if not original.expose:
            log_internal(error, request_id, trace_id)
            masked = True
    elif original is None or (error.path is None and isinstance(original, GraphQLError)):
        # A request error (syntax, validation, variable coercion): the client's to fix.
        body = {"message": error.message, "extensions": {"code": "BAD_USER_INPUT"}}
    else:
        log_internal(error, request_id, trace_id)
        body = {"message": INTERNAL["message"], "extensions": dict(INTERNAL["extensions"])}
        masked = True
    if masked and trace_id:
        body["extensions"] = {**body["extensions"], "traceId": trace_id}
    if error.locations:
        body["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path is not None:
        body["path"] = error.path
    return body


def format_errors(
    errors: Iterable[GraphQLError], request_id: str = "", trace_id: str | None = None
) -> list[dict[str, Any]]:
    return [format_error(e, request_id, trace_id) for e in errors]


def log_internal(error: GraphQLError, request_id: str, trace_id: str | None = None) -> None:
    original = error.original_error or error
    log.error(
        "unexpected error in %s",
        ".".join(str(p) for p in error.path or ()),
        exc_info=(type(original), original, original.__traceback__),
        extra={"request_id": request_id, "trace_id": trace_id},
    )
