"""Errors stage: the last net. Whatever escapes a route becomes a masked 500, logged whole.

A client never sees a stack trace or an upstream body; the log has the full error.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.errors import BffError
from bff.rendering.errors import error_response
from bff.request_id import current_request_id

log = logging.getLogger("bff.errors")


class ErrorsStage:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception(
                "unhandled error on %s %s (request %s)",
                scope.get("method"),
                scope.get("path"),
                current_request_id(),
            )
            if started:
                raise
            error = exc if isinstance(exc, BffError) and exc.expose else BffError()
            await error_response(error, accept_header(scope))(scope, receive, send)


def accept_header(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"accept":
            return str(value.decode("latin-1"))
    return None
