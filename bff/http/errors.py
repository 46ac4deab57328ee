"""Errors stage: the last net. Whatever escapes a route becomes a masked 500, logged whole.

A client never sees a stack trace or an upstream body; the log has the full error. A request
still running when the shutdown drain (`server.drain_timeout`) ends is cancelled by the server;
it gets a 503 that says so (`ShuttingDown`), which clients and load balancers retry elsewhere,
instead of the server's bare 500 and a traceback in the log. A client that went away
mid-request (Starlette's `ClientDisconnect` while its body was read) is not an error of ours:
one log line, and the request ends as 499 (nginx's "client closed request", which nobody
receives) so metrics and the access line do not count it as a 500.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.errors import BffError, ShuttingDown
from bff.rendering.errors import error_response
from bff.request_id import current_request_id

log = logging.getLogger("bff.errors")
CLIENT_GONE = 499  # nginx's "client closed request": the status of a request nobody awaits


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
        except ClientDisconnect:
            if not started:
                await client_gone(scope, send)
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


async def client_gone(scope: Scope, send: Send) -> None:
    """Log a request its client abandoned and end it as 499 (the send reaches nobody; the
    stages outside record the status)."""
    log.info(
        "client went away mid-request: %s %s (request %s)",
        scope.get("method"),
        scope.get("path"),
        current_request_id(),
    )
    await send({"type": "http.response.start", "status": CLIENT_GONE, "headers": []})
    await send({"type": "http.response.body", "body": b""})
