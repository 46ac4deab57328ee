"""`EdgeProtocol`: uvicorn's httptools protocol with the connection limits of SPEC section 15.

uvicorn bounds none of what a client can hold open or make the gateway buffer: a head of any
size and field count, a head or a body sent a byte a minute, a silent socket. This subclass
adds, per connection and with no cost on a request that arrives whole:

    head      the bytes of a head are counted as they arrive (so a field that never ends is
              bounded too) and, once it is whole, its fields; the request line and fields
              are measured only when those bytes could pass the limit; past
              `max_header_size` or `max_header_count`: 431 and close, the app never runs
    timers    one per connection, armed only while the client owes bytes: from connecting, or
              from a head's first byte, until the head is whole (`header_timeout`); while a
              body is incomplete, `body_timeout` since its last byte (time the gateway does
              not read, its buffer full, does not count); between requests uvicorn's own
              keep-alive timer (`idle_timeout`); past one: close
    cap       a connection opened beyond `max_connections` gets 503 with `Connection: close`
              at its first request, except `GET /healthz`, which is answered (then closed), so
              probes still see a live process

A request that arrives in one read (most do) costs a few assignments and comparisons, about
a microsecond; no timer is armed for it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from asyncio import TimerHandle
from http import HTTPStatus
from typing import Any

import httptools
from starlette.responses import Response
from starlette.types import ASGIApp
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bff.errors import BadUserInput, BffError
from bff.rendering.errors import error_response
from bff.rendering.media import JSON
from bff.serving.held_head import HeldHead
from bff.serving.limits import EdgeLimits

log = logging.getLogger("bff.edge")

IDLE, HEAD, BODY = 0, 1, 2  # what the connection is receiving

_LIMITS: weakref.WeakKeyDictionary[Config, EdgeLimits] = weakref.WeakKeyDictionary()


def limits_of(config: Config) -> EdgeLimits:
    """The limits of the server `config` describes: set by `set_limits`, else those of the
    app it serves, worked out once."""
    limits = _LIMITS.get(config)
    if limits is None:
        limits = _LIMITS[config] = EdgeLimits.for_app(config.loaded_app)
    return limits


def set_limits(config: Config, limits: EdgeLimits) -> None:
    """Serve `config`'s app with `limits` rather than those of its settings."""
    _LIMITS[config] = limits


class TooManyConnections(BffError):
    code = "UPSTREAM_UNAVAILABLE"
    status = 503
    expose = True
    default_message = "Too many connections; retry later"


def _raw(response: Response) -> bytes:
    """A rendered response as bytes on the wire (for refusals made before any ASGI cycle)."""
    status = HTTPStatus(response.status_code)
    lines = [f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode()]
    lines += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
    return b"".join([*lines, b"\r\n", response.body])


# Responses are ASGI apps too: these answer instead of the app, `Connection: close` ends them.
CLOSE = {"Connection": "close"}
head_too_large = error_response(
    BadUserInput("Request header fields too large"), status=431, media_type=JSON, headers=CLOSE
)
TOO_LARGE = _raw(head_too_large)  # for a head refused before it is whole
too_many_connections = error_response(
    TooManyConnections(), media_type=JSON, headers={"Retry-After": "1", **CLOSE}
)


class EdgeProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = self.limits = limits_of(config)
        # uvicorn's own timer between requests; `call_later` takes fractions of a second too
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]
        self._max_size = limits.max_header_size
        self._max_fields = limits.max_header_count
        self._phase = IDLE
        self._head_bytes = 0  # bytes of an incomplete head in earlier reads
        self._chunk = 0  # bytes of the read being parsed
        self._completed = 0  # requests whose body has arrived whole
        self._timer: TimerHandle | None = None
        self._progress = 0.0  # loop time of a body's last bytes
        self._served = False  # a whole head has arrived on this connection
        self._over_cap = False
        self._refused = False  # a head was refused while earlier requests were in flight
        self._held_head: HeldHead | None = None  # the transport as each cycle writes to it

    # connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._held_head = HeldHead(transport, self.loop)
        if len(self.connections) > self.limits.max_connections:
            self._over_cap = True
        self._arm(self.limits.header_timeout)  # a socket that never sends a head is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused head, read before reading stopped
        self._unset_keepalive_if_required()
        entered, completed = self._phase, self._completed
        self._chunk = len(data)  # with `_head_bytes`: at most this much of a head so far
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        phase = self._phase
        if phase == HEAD:  # a head is still incomplete: count what it took so far
            if completed != self._completed:
                pass  # it began after another request in this read: counted from the next
            elif entered == HEAD:
                self._head_bytes += len(data)
            else:
                self._head_bytes = len(data)  # all of it is the start of this head
            if self._head_bytes > self._max_size:
                self._refuse_head("the head is larger than server.max_header_size")
            elif self._timer is None:
                self._arm(self.limits.header_timeout)
        elif phase == BODY:
            self._progress = self.loop.time()
            if self._timer is None:
                self._arm(self.limits.body_timeout)

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = HEAD
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._phase = BODY
        self._served = True
        if self._timer is not None:
            self._disarm()
        refusal = None
        if len(self.headers) > self._max_fields:
            refusal = "the head has more fields than server.max_header_count"
        elif self._head_bytes + self._chunk > self._max_size:  # else it cannot be too large
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self._max_size:
                refusal = "the head is larger than server.max_header_size"
        if refusal is not None:
            # Answered in its turn (after requests pipelined before it), then closed.
            log.info("refused a request head from %s: %s", self._peer(), refusal)
            self._serve_instead(head_too_large)
        elif not self._over_cap:
            running = self.cycle
            super().on_headers_complete()
            held = self._held_head
            if held is not None and (running is None or running.response_complete):
                self.cycle.transport = held  # type: ignore[assignment]
                held.arm()  # it starts now (a pipelined one waits): one write, not two
        elif self.url == b"/healthz" or self.url.startswith(b"/healthz?"):
            super().on_headers_complete()
            self.cycle.keep_alive = False  # answered, then closed: the cap still holds
        else:
            self._serve_instead(too_many_connections)

    def _serve_instead(self, answer: ASGIApp) -> None:
        """Let uvicorn run this request with `answer` instead of the app."""
        app, self.app = self.app, answer
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = IDLE
        self._completed += 1
        if self._timer is not None:
            self._disarm()

    # timers and refusals

    def _arm(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        phase = self._phase
        if phase == BODY:
            waited = self.loop.time() - self._progress
            timeout = self.limits.body_timeout
            if self.flow.read_paused:  # the gateway is not reading: not the client's delay
                self._progress = self.loop.time()
                self._arm(timeout)
                return
            if waited < timeout:
                self._arm(timeout - waited)
                return
            self._close("no byte of the request body for server.body_timeout")
        elif phase == HEAD or not self._served:
            self._close("no whole request head within server.header_timeout")

    def _close(self, why: str) -> None:
        log.info("closed the connection of %s: %s", self._peer(), why)
        if self._held_head is not None:
            self._held_head.flush()
        self.transport.close()

    def _refuse_head(self, why: str) -> None:
        """431 and close, for a head that is not whole yet; the app never sees it. Requests
        pipelined before it are answered first: reading stops, and the refusal waits."""
        log.info("refused a request head from %s: %s", self._peer(), why)
        self._phase = IDLE
        self._disarm()
        if self.cycle is None or self.cycle.response_complete:
            if self._held_head is not None:
                self._held_head.flush()
            self.transport.write(TOO_LARGE)
            self.transport.close()
        else:
            self._refused = True
            self.flow.pause_reading()

    def on_response_complete(self) -> None:
        if self._held_head is not None:
            self._held_head.flush()
        if self._refused and not self.pipeline:  # the last answer before a refused head
            self.server_state.total_requests += 1
            self.transport.write(TOO_LARGE)
            self.transport.close()
            return
        super().on_response_complete()

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self._disarm()
        if self._held_head is not None:
            self._held_head.flush()
        self.send_400_response(message)

    def _peer(self) -> str:
        return self.client[0] if self.client else "-"
