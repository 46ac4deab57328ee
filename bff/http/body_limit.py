"""Body limit stage: `server.max_body`, enforced without reading an oversized body whole.

A declared `Content-Length` over the limit is refused at once, before a byte of the body is
read (the HTTP parser cannot deliver more than the declared length). A body without one
(chunked) is counted as it streams in, and refused as soon as it passes the limit. Either way
the answer is 413 with a `BAD_USER_INPUT` error body and `Connection: close`, so the server
does not go on reading the rest. Requests without a body cost one look at the headers.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.errors import BadUserInput
from bff.rendering.errors import error_response
from bff.rendering.media import JSON


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes the limit."""


def too_large(limit: int, status: int = 413) -> Response:
    message = (
        f"Request body is larger than the limit of {limit} bytes"
        if status == 413
        else "Invalid Content-Length"
    )
    return error_response(
        BadUserInput(message), status=status, media_type=JSON, headers={"Connection": "close"}
    )


class BodyLimitStage:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and not chunked:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > self.max_body:
                await too_large(self.max_body, 413 if declared > 0 else 400)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if not chunked:  # neither header: the request has no body
            await self.app(scope, receive, send)
            return
        await self.counted(scope, receive, send)

    async def counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False
        limit = self.max_body

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large(limit)(scope, receive, send)
