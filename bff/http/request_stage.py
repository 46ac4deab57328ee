"""Request stage: the outermost stage, where a request gets its `RequestState` and id.

It runs before anything can fail, so the errors stage, the access log and every route see the
same request id, and sets it as the context's request id (`bff.request_id`) so that every
log line written while serving the request carries it. The id is echoed in the `X-Request-Id`
response header so a client can quote it in a support ticket.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.http.state import STATE_KEY, RequestState, new_request_id
from bff.request_id import REQUEST_ID


class RequestStage:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        state = RequestState(new_request_id(incoming))
        scope[STATE_KEY] = state
        header = (b"x-request-id", state.request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(state.request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
