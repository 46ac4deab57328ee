"""`Passthrough`: the ASGI app behind `/api`, each request streamed through its route's pool.

    /api/{route}/{path}?{query}
      route unknown -> 404; method not listed -> 405 with Allow; requirement -> 401/403;
      path not canonical-able -> 400; framing ambiguous -> 400; declared body too big -> 413;
      then the request goes through the pool's transport stack (`UpstreamPool.stream`: the
      balancer picks the instance, a client span per attempt, retries of a request without
      body as for GraphQL's calls), its body streamed from the client, and the answer
      streamed back as it comes (status and end-to-end fields as they are, upstream 4xx/5xx
      included), less what an upstream should not tell a client (`forwarding`).

Errors of the gateway itself are JSON `{"error": ..., "code": ..., "upstream": ...}`, never a
stack trace: no usable instance 503 (with Retry-After), connect failure or unreadable answer
502, time-out 504. A client that hangs up mid-answer closes the upstream connection (its
unread rest must not answer someone else); one that hangs up mid-body ends as 499, logged
once (`bff.http.errors.client_gone`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from ipaddress import ip_network
from typing import TYPE_CHECKING

import orjson
from starlette.types import Receive, Scope, Send

from bff.errors import BffError, Forbidden, Unauthenticated
from bff.http.errors import client_gone
from bff.http.state import request_state
from bff.passthrough.forwarding import Network, body_framing, client_fields, upstream_head
from bff.passthrough.routes import PassRoute, routes_from_settings
from bff.upstream import UpstreamPool
from bff.upstream.balancer import NoInstanceAvailable
from bff.upstream.http11 import ProtocolViolation, TimedOut, TransportError
from bff.upstream.request import InvalidRequest, Request, encode_path
from bff.upstream.streaming import StreamedResponse

if TYPE_CHECKING:
    from bff.config import Settings

# What a query string may carry as is: printable ASCII but space and "#".
_QUERY_BYTES = frozenset(range(0x21, 0x7F)) - {ord("#")}
# Methods whose request without a body still says `Content-Length: 0` (as `build_request`).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(Exception):
    """The client's streamed body passed `max_body`."""


class ClientGone(Exception):
    """The client disconnected while its body was being forwarded."""


class Passthrough:
    def __init__(
        self,
        routes: Mapping[str, PassRoute],
        *,
        prefix: str = "/api",
        max_body: int = 1_000_000,
        trusted_proxies: Sequence[str] = (),
        read_timeout: float = 30.0,
    ) -> None:
        self.routes = dict(routes)
        self.prefix = prefix.encode("ascii")
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.trusted: list[Network] = [ip_network(n, strict=False) for n in trusted_proxies]

    @classmethod
    def from_settings(cls, settings: Settings, pools: Mapping[str, UpstreamPool]) -> Passthrough:
        return cls(
            routes_from_settings(settings, pools),
            max_body=settings.server.max_body,
            trusted_proxies=settings.server.trusted_proxies,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        if not raw.startswith(self.prefix + b"/"):
            return await _error(send, 404, "No such route", "NOT_FOUND")
        name, slash, rest = raw[len(self.prefix) + 1 :].decode("latin-1").partition("/")
        route = self.routes.get(name)
        if route is None:
            return await _error(send, 404, "No such route", "NOT_FOUND")
        method: str = scope["method"]
        if method not in route.methods:
            allow = [(b"allow", route.allow.encode())]
            return await _error(send, 405, "Method not allowed", "BAD_USER_INPUT", allow)
        state = request_state(scope)
        try:
            route.requirement.check(state.principal)
        except (Unauthenticated, Forbidden) as refused:
            return await _refuse(send, refused)
        query: bytes = scope.get("query_string", b"")
        fields: list[tuple[bytes, bytes]] = scope["headers"]
        try:
            path = route.upstream_path(slash + rest)
            if not _QUERY_BYTES.issuperset(query):
                raise InvalidRequest("the query string has characters that must be escaped")
            length = body_framing(fields) or None  # a body of 0 bytes is no body to stream
            head = upstream_head(
                fields,
                principal=state.principal,
                request_id=state.request_id,
                client=(scope.get("client") or (None,))[0],
                scheme=scope.get("scheme", "http"),
                forward_authorization=route.forward_authorization,
                trusted_proxies=self.trusted,
            )
        except InvalidRequest as exc:
            return await _error(send, 400, str(exc), "BAD_USER_INPUT")
        if length is not None and length > self.max_body:
            return await _error(send, 413, "Request body too large", "BAD_USER_INPUT")
        if length is None and method in _BODY_METHODS:
            head += b"Content-Length: 0\r\n"  # a POST without a body says so
        target = encode_path(path).encode("ascii")
        if query:
            target += b"?" + query
        request = Request(method, target, head, b"", state.request_id.encode("ascii"))
        await self._forward(route, request, length, scope, receive, send)

    async def _forward(
        self,
        route: PassRoute,
        request: Request,
        length: int | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        pool = route.pool
        upstream = pool.name
        body = None if length is None else _client_body(receive, self.max_body)
        budget = pool.total_timeout if route.timeout is None else route.timeout
        deadline = asyncio.get_running_loop().time() + budget
        try:
            answer = await pool.stream(
                request,
                deadline,
                body=body,
                content_length=None if length == -1 else length,
                read_timeout=self.read_timeout,
            )
        except NoInstanceAvailable:
            retry = [(b"retry-after", b"1")]
            return await _error(
                send, 503, "No usable instance", "UPSTREAM_UNAVAILABLE", retry, upstream
            )
        except TimedOut:
            return await _error(send, 504, "Upstream timed out", "UPSTREAM_TIMEOUT", (), upstream)
        except ProtocolViolation:
            message = "Upstream gave an unreadable answer"
            return await _error(send, 502, message, "UPSTREAM_UNAVAILABLE", (), upstream)
        except TransportError:
            message = "Upstream unavailable"
            return await _error(send, 502, message, "UPSTREAM_UNAVAILABLE", (), upstream)
        except BodyTooLarge:
            return await _error(send, 413, "Request body too large", "BAD_USER_INPUT")
        except InvalidRequest as exc:
            return await _error(send, 400, str(exc), "BAD_USER_INPUT")
        except ClientGone:
            return await client_gone(scope, send)
        await _relay(answer, route.response_headers, receive, send)


async def _client_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        piece: bytes = message.get("body", b"")
        size += len(piece)
        if size > limit:
            raise BodyTooLarge()
        if piece:
            yield piece
        if not message.get("more_body", False):
            return


async def _relay(
    answer: StreamedResponse, passed: frozenset[str], receive: Receive, send: Send
) -> None:
    """The upstream's answer to the client as it comes; the upstream connection is given back
    only when the body was read whole, and closed otherwise (client gone, upstream failed).

    A body that arrived with its head goes out in one message, without iterating. For a
    longer one, the request body is consumed by now (or abandoned after an early answer), so
    `receive` is free to tell when the client hangs up: the relay then stops reading the
    upstream.
    """
    gone: asyncio.Future[None] | None = None
    try:
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": client_fields(answer.headers, passed),
            }
        )
        whole = answer.take_whole()
        if whole is not None:  # the usual case: it came with the head, one message
            await send({"type": "http.response.body", "body": whole, "more_body": False})
            return
        async for piece in answer:
            last = answer.at_end
            await send({"type": "http.response.body", "body": piece, "more_body": not last})
            if last:
                return
            if gone is None:
                gone = asyncio.ensure_future(_disconnected(receive))
            elif gone.done():
                return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (TransportError, OSError):
        return  # too late for a status: the client sees a truncated answer and a close
    finally:
        if gone is not None:
            gone.cancel()
        await answer.aclose()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body the upstream did not wait for


async def _refuse(send: Send, error: BffError) -> None:
    extra = [(b"www-authenticate", b'Bearer error="invalid_token"')] if error.status == 401 else []
    await _error(send, error.status, error.public_message, error.code, extra)


async def _error(
    send: Send,
    status: int,
    message: str,
    code: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    upstream: str | None = None,
) -> None:
    content: dict[str, str] = {"error": message, "code": code}
    if upstream is not None:
        content["upstream"] = upstream
    body = orjson.dumps(content)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
