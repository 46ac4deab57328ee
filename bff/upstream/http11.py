"""One HTTP/1.1 keep-alive connection to an upstream: an asyncio Protocol over httptools.

Why our own client: the gateway makes several upstream calls per GraphQL request, so the
client's CPU per call is a large share of the gateway's. Measured by `bench/client_bench.py`,
general-purpose clients (httpx, aiohttp) spend several times the CPU of this one per call on
URL objects, header objects, tracing hooks and pool bookkeeping that a gateway talking plain
HTTP/1.1 to known services does not need. The parsing itself is httptools (llhttp, the parser
uvicorn and Node use), so only the framing glue lives here.

A connection carries one request at a time (no pipelining). It never decides about reuse or
retries: it reports what happened (`reusable`, `ConnectionLost.received`) and the pool in
`bff.upstream.connections` decides. Errors are the small tree below, which `UpstreamPool`
translates to `bff.errors`; nothing here escapes the package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import cast

import httptools

MAX_BODY = 64 * 1024 * 1024  # bytes of response body accepted before giving up
MAX_HEADER_BYTES = 64 * 1024  # bytes of response header names and values


class TransportError(Exception):
    """The exchange with an upstream failed below HTTP semantics."""


class ConnectFailed(TransportError):
    """No TCP (or TLS) connection could be opened: refused, unreachable, reset."""


class TimedOut(TransportError):
    """The call's time budget ran out: waiting for a connection, or for the response."""


class ConnectTimedOut(TimedOut):
    """Opening a connection took longer than the connect timeout."""


class ConnectionLost(TransportError):
    """The connection closed before the response was complete.

    `received` says whether any byte of the response had arrived: a request on a reused
    connection that received nothing was most likely never seen by the server (it had closed
    the idle connection), so an idempotent request may be sent again on a fresh one.
    """

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        self.received = received


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection closed before any byte of the answer: the server most
    likely closed it while idle and never saw the request. Raised by `ConnectionPool.send`
    (one attempt per call) so the layer above decides whether and where to send it again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, received=False)


class ProtocolViolation(TransportError):
    """The upstream answered something that is not a well-formed HTTP/1.1 response."""


class ResponseTooLarge(ProtocolViolation):
    """The response's headers or body exceed what the gateway accepts."""


class Headers(Mapping[str, str]):
    """Response headers, read case-insensitively; repeated fields are joined with ", ".

    The raw `(name, value)` byte pairs are kept as received and decoded only on first access:
    most callers read the status and body and never look at a header.
    """

    __slots__ = ("_map", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._map: dict[str, str] | None = None

    def _fields(self) -> dict[str, str]:
        if self._map is None:
            fields: dict[str, str] = {}
            for name, value in self.raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                fields[key] = f"{fields[key]}, {text}" if key in fields else text
            self._map = fields
        return self._map

    def __getitem__(self, name: str) -> str:
        return self._fields()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def get_list(self, name: str) -> list[str]:
        """Every value of a repeated field, unjoined (`set-cookie` cannot be joined)."""
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.raw if n.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({list(self._fields().items())!r})"


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, raw headers, body


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection; `exchange` sends a request and awaits the response."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0  # loop time when last returned to its pool
        self.used = False  # has carried a request before: may have been closed while idle
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._head_only = False
        self._received = False
        self._complete = True
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._chunks: list[bytes] = []
        self._body_size = 0

    @property
    def reusable(self) -> bool:
        """Whether this connection may carry another request now."""
        return self._complete and not self.closed

    def exchange(
        self, request: bytes, deadline: float, *, head_only: bool = False
    ) -> asyncio.Future[Answer]:
        """Write a whole request; the future resolves with the response or a TransportError.

        At `deadline` (loop time) the future fails with `TimedOut` and the connection is
        closed: a response abandoned half-way leaves bytes on the wire. One timer handle per
        exchange is the cheapest way to bound it (`asyncio.timeout` costs twice as much). The
        caller must likewise discard the connection unless the future succeeded and
        `reusable` holds.
        """
        transport = self.transport
        assert transport is not None and self._complete
        self.used = True
        self._complete = False
        self._received = False
        self._head_only = head_only
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        if transport.is_closing():  # the server's FIN arrived, connection_lost has not yet
            self._fail(ConnectionLost("connection closed while idle", received=False))
            return waiter
        self._timer = loop.call_at(deadline, self._expire)
        transport.write(request)
        return waiter

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._complete:  # bytes nobody asked for: the stream can no longer be trusted
            self.close()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a callback below raised, if one did
            if isinstance(cause, TransportError):
                self._fail(cause)
            else:
                self._fail(ProtocolViolation(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool:
        self.closed = True  # the server is done with this connection: never reuse it
        return False  # and close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._complete:
            return
        if self._status and not self._head_only and not self._framed():
            self._finish()  # no Content-Length and not chunked: the body ends at EOF
            return
        reason = f"connection closed by the upstream{f': {exc}' if exc else ''}"
        self._fail(ConnectionLost(reason, received=self._received))

    # --- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: the stream is out of step
            raise ProtocolViolation("response without a request")
        self._status = 0
        self._headers = []
        self._header_bytes = 0
        self._chunks = []
        self._body_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise ResponseTooLarge(f"response headers over {MAX_HEADER_BYTES} bytes")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._head_only and self._status >= 200:
            self._finish()  # HEAD: headers describe a body that never comes; do not reuse
            self.close()

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            raise ResponseTooLarge(f"response body over {self._max_body} bytes")
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._complete:
            return
        if self._status < 200:  # an interim 1xx answer: the real one follows
            return
        if not self._parser.should_keep_alive():
            self._finish()
            self.close()
            return
        self._finish()

    # --- ----------------------------------------------------------------------------------

    def _finish(self) -> None:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._complete = True
        self._chunks = []
        self._stop_timer()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._headers, body))

    def _fail(self, exc: TransportError) -> None:
        waiter = self._waiter
        self._waiter = None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _framed(self) -> bool:
        """Content-Length or chunked: the body's end is known without waiting for EOF."""
        return any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self._headers)

    def _expire(self) -> None:
        self._timer = None
        self._fail(TimedOut("no complete response in time"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
