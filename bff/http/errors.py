"""Errors stage: the last net. Whatever escapes a route becomes a masked 500, logged whole.

A client never sees a stack trace or an upstream body; the log has the full error. A request
still running when the shutdown drain (`server.drain_timeout`) ends is cancelled by the server;
it gets a 503 that says so (`ShuttingDown`), which clients and load balancers retry elsewhere,
instead of the server's bare 500 and a traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.errors import BffError, ShuttingDown
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
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if started or task is None or not task.cancelling():
                raise
            # Only the server cancels a request's task: at the end of its shutdown drain.
            task.uncancel()
            log.warning(
                "%s %s (request %s) cut off: the shutdown drain ended first",
                scope.get("method"),
                scope.get("path"),
                current_request_id(),
            )
            await error_response(ShuttingDown(), accept_header(scope))(scope, receive, send)
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
