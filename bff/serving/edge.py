"""`EdgeProtocol`: uvicorn's httptools protocol with the connection limits of SPEC section 15.

uvicorn bounds none of what a client can hold open or make the gateway buffer: a head of any
size and field count, a head or a body sent a byte a minute, a silent socket. This subclass
adds, per connection and with no cost on a request that arrives whole:

    head      the request line and fields are counted as the parser hands them over (and the
              raw bytes while a head is incomplete, so a field that never ends is bounded);
              past `max_header_size` or `max_header_count`: 431 and close, the app never runs
    timers    one per connection, armed only while the client owes bytes: from connecting, or
              from a head's first byte, until the head is whole (`header_timeout`); while a
              body is incomplete, `body_timeout` since its last byte (time the gateway does
              not read, its buffer full, does not count); between requests uvicorn's own
              keep-alive timer (`idle_timeout`); past one: close
    cap       a connection opened beyond `max_connections` gets 503 with `Connection: close`
              at its first request, except `GET /healthz`, which is answered (then closed), so
              probes still see a live process

A request that arrives in one read (most do) passes through three extra assignments and a
comparison per field; no timer is armed for it.
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
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bff.errors import BadUserInput, BffError
from bff.rendering.errors import error_response
from bff.rendering.media import JSON
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


class HeadTooLarge(Exception):
    """Raised from a parser callback: the head passed a limit (it stops the parser)."""


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


CLOSE = {"Connection": "close"}
TOO_LARGE = _raw(
    error_response(
        BadUserInput("Request header fields too large"), status=431, media_type=JSON, headers=CLOSE
    )
)
# An ASGI app: the answer on a connection beyond `max_connections`; `Connection: close` ends it.
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
        self._head_size = 0  # request line and fields so far, as the parser handed them over
        self._head_bytes = 0  # raw bytes received while a head was incomplete
        self._fields = 0
        self._completed = 0  # requests whose body has arrived whole
        self._timer: TimerHandle | None = None
        self._progress = 0.0  # loop time of a body's last bytes
        self._served = False  # a whole head has arrived on this connection
        self._over_cap = False

    # connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._over_cap = True
        self._arm(self.limits.header_timeout)  # a socket that never sends a head is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        entered, completed = self._phase, self._completed
        if entered == HEAD:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, HeadTooLarge):
                self._refuse_head(str(error.__context__))
            else:
                self._bad_request()
            return
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
        if phase == HEAD:
            if entered == IDLE and completed == self._completed:
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
        self._head_size = self._head_bytes = self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        if self._head_size > self._max_size:
            raise HeadTooLarge("the request target is larger than server.max_header_size")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._fields > self._max_fields:
            raise HeadTooLarge("the head has more fields than server.max_header_count")
        if self._head_size > self._max_size:
            raise HeadTooLarge("the head is larger than server.max_header_size")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase = BODY
        self._served = True
        if self._timer is not None:
            self._disarm()
        if not self._over_cap:
            super().on_headers_complete()
            return
        if self.url == b"/healthz" or self.url.startswith(b"/healthz?"):
            super().on_headers_complete()
            self.cycle.keep_alive = False  # answered, then closed: the cap still holds
            return
        app, self.app = self.app, too_many_connections
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
        self.transport.close()

    def _refuse_head(self, why: str) -> None:
        """431 and close; the app never sees the request (so nothing of it goes upstream)."""
        log.info("refused a request head from %s: %s", self._peer(), why)
        self._phase = IDLE
        self._disarm()
        if self.cycle is None or self.cycle.response_complete:  # not in another's answer
            self.transport.write(TOO_LARGE)
        self.transport.close()

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self._disarm()
        self.send_400_response(message)

    def _peer(self) -> str:
        return self.client[0] if self.client else "-"
