"""One HTTP/1.1 keep-alive connection to an upstream: an asyncio Protocol over httptools.

Why our own client: the gateway makes several upstream calls per GraphQL request, so the
client's CPU per call is a large share of the gateway's. Measured by `bench/client_bench.py`,
general-purpose clients (httpx, aiohttp) spend several times the CPU of this one per call on
URL objects, header objects, tracing hooks and pool bookkeeping that a gateway talking plain
HTTP/1.1 to known services does not need. The parsing itself is httptools (llhttp, the parser
uvicorn and Node use), so only the framing glue lives here.

A connection carries one request at a time (no pipelining). It never decides about reuse or
retries: it reports what happened (`reusable`, `StaleConnection`, `request_sent`) and the
pool in `bff.upstream.connections`, and the layers above it, decide. Errors are the small tree
of `bff.upstream.failures` (re-exported here), which `UpstreamPool` translates to `bff.errors`;
nothing here escapes the package.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol, cast

import httptools

from bff.upstream.failures import (
    ConnectFailed,
    ConnectionLost,
    ConnectTimedOut,
    ProtocolViolation,
    ResponseTooLarge,
    StaleConnection,
    TimedOut,
    TlsFailed,
    TransportError,
    tls_reason,
)
from bff.upstream.headers import Headers

__all__ = [  # the error tree and Headers are re-exported: callers import them from here
    "MAX_BODY",
    "Answer",
    "BodySink",
    "ConnectFailed",
    "ConnectTimedOut",
    "Connection",
    "ConnectionLost",
    "Fields",
    "Headers",
    "ProtocolViolation",
    "ResponseTooLarge",
    "StaleConnection",
    "TimedOut",
    "TlsFailed",
    "TransportError",
]

MAX_BODY = 16 * 1024 * 1024  # default bytes of response body accepted (per upstream: config)
MAX_HEAD_BYTES = 64 * 1024  # bytes of a response's head (status line, fields) and trailers
MAX_FIELDS = 256  # header fields of a response head, and likewise of its trailers
CHUNK_LINE_ALLOWANCE = 64  # framing bytes granted per chunk (size line and CRLFs)


Body = bytes | bytearray  # a body that came in one read is the bytes read, else one buffer
Answer = tuple[int, list[tuple[bytes, bytes]], Body]  # status, raw headers, body
Fields = list[tuple[bytes, bytes]]


class BodySink(Protocol):
    """Where a streamed exchange delivers its body (`bff.upstream.streaming.BodyStream`)."""

    def push(self, piece: bytes) -> None: ...
    def end(self, trailers: Fields) -> None: ...
    def fail(self, exc: TransportError) -> None: ...


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection; `exchange` sends a request and awaits the response.

    Hostile upstreams are bounded here, on every read rather than per header: the bytes of
    this exchange that are not body (head, chunk lines, trailers) may not pass
    `MAX_HEAD_BYTES` plus a small allowance per chunk, so a header line that never ends fails
    the response after 64 KiB instead of growing in the parser until the deadline. Field
    counts are capped, trailers are kept apart from the head, and any sign that an answer
    belongs to another request (bytes after the response, a foreign `X-Request-Id`) closes
    the connection.
    """

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0  # loop time when last returned to its pool
        self.used = False  # has carried a request before: may have been closed while idle
        self._max_body = max_body
        self._limit = max_body  # of the exchange in progress
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sink: BodySink | None = None  # set while a streamed exchange has a body to come
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._expect_id: bytes | None = None
        self._reused = False
        self._head_only = False
        self._received = False
        self._interim = False
        self._complete = True
        self._status = 0
        self._headers: Fields = []
        self._trailers: Fields | None = None  # made when a trailer arrives (rarely)
        self._wire = 0  # bytes of this exchange's response received so far
        self._allowance = MAX_HEAD_BYTES  # of those, how many may be something else than body
        # The buffered body: the first piece as it came (most bodies arrive in one read),
        # then one growing buffer, so the body is never held twice (no list of pieces + join).
        self._body: bytes | bytearray = b""
        self._body_size = 0

    @property
    def reusable(self) -> bool:
        """Whether this connection may carry another request now."""
        return self._complete and not self.closed

    def exchange(
        self,
        request: bytes,
        deadline: float,
        *,
        head_only: bool = False,
        expect_id: bytes | None = None,
        sink: BodySink | None = None,
        max_body: int | None = None,
    ) -> asyncio.Future[Answer]:
        """Write a request (its head and whole body, or only its head when the caller streams
        the body with `write`); the future resolves with the response or a TransportError.

        `max_body` overrides the connection's body limit for this exchange (streamed bodies
        are not held, so their limit is the caller's choice). With a `sink` the future
        resolves as soon as the head is in (body `b""`) and the body, trailers or a later
        failure go to the sink. At `deadline` (loop time) the future, or
        the sink, fails with `TimedOut` and the connection is closed: a response abandoned
        half-way leaves bytes on the wire. One timer handle per exchange is the cheapest way
        to bound it (`asyncio.timeout` costs twice as much). The caller must likewise discard
        the connection unless the exchange succeeded and `reusable` holds.
        """
        transport = self.transport
        assert transport is not None and self._complete
        self._reused = self.used
        self.used = True
        self._complete = False
        self._received = False
        self._interim = False
        self._head_only = head_only
        self._expect_id = expect_id
        self._sink = sink
        self._limit = self._max_body if max_body is None else max_body
        self._wire = 0
        self._allowance = MAX_HEAD_BYTES
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        if transport.is_closing():  # the server's FIN arrived, connection_lost has not yet
            self._fail(StaleConnection("connection closed while idle", request_sent=False))
            return waiter
        self._timer = loop.call_at(deadline, self._expire)
        transport.write(request)
        return waiter

    def write(self, data: bytes) -> None:
        """More of the request body (streamed requests); `drain` before writing much more."""
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full (backpressure on request bodies)."""
        writable = self._writable
        if writable is not None:
            await asyncio.shield(writable)

    def pause_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def abort(self, exc: TransportError) -> None:
        """Fail the exchange in progress (its caller, or its body's consumer) and close."""
        self._fail(exc)

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
        self._wire += len(data)
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # whatever the parser raises is the upstream's fault
            self._fail(_violation(exc))
            return
        if self._wire - self._body_size > self._allowance and not self._complete:
            self._fail(ResponseTooLarge(f"response head or trailers over {MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool:
        self.closed = True  # the server is done with this connection: never reuse it
        return False  # and close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        writable = self._writable
        if writable is not None:
            self._writable = None
            if not writable.done():
                writable.set_result(None)  # a paused writer wakes and sees `closed`
        if self._complete:
            return
        if self._status and not self._head_only and not self._framed():
            self._finish()  # no Content-Length and not chunked: the body ends at EOF
            return
        if self._interim and not self._status:
            self._fail(ProtocolViolation("only an interim (1xx) response, then a close"))
            return
        if isinstance(exc, ssl.SSLError) and not self._reused and not self._received:
            # TLS 1.3 ends the handshake for the client before the server has checked the
            # client's certificate: its refusal arrives as an alert instead of an answer
            self._fail(TlsFailed(f"the upstream refused the TLS session: {tls_reason(exc)}"))
            return
        reason = f"connection closed by the upstream{f': {exc}' if exc else ''}"
        if self._reused and not self._received:
            self._fail(StaleConnection(reason))
        else:
            self._fail(ConnectionLost(reason, received=self._received))

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable = self._writable
        self._writable = None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # --- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: the stream is out of step
            raise ProtocolViolation("response without a request")
        self._status = 0
        self._headers = []
        self._trailers = None
        self._body = b""
        self._body_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._status:  # the head is complete: a trailer, kept apart
            if self._trailers is None:
                self._trailers = []
            fields = self._trailers
        else:
            fields = self._headers
        fields.append((name, value))
        if len(fields) > MAX_FIELDS:
            raise ResponseTooLarge(f"more than {MAX_FIELDS} header or trailer fields")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101:
                raise ProtocolViolation("101 Switching Protocols to a request without Upgrade")
            self._interim = True  # 100 or 103: its fields are dropped, the answer follows
            return
        self._status = status
        fields = self._headers
        if self._expect_id is not None:
            self._check_request_id(fields)
        if self._sink is not None:
            self._stop_timer()  # the body's pace is the consumer's: it bounds its own waits
            waiter = self._waiter
            self._waiter = None
            if waiter is not None and not waiter.done():
                waiter.set_result((status, fields, b""))
        if self._head_only:
            self._finish()  # HEAD: headers describe a body that never comes; do not reuse
            self.close()

    def on_chunk_header(self) -> None:
        self._allowance += CHUNK_LINE_ALLOWANCE

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._limit:
            raise ResponseTooLarge(f"response body over {self._limit} bytes")
        if self._sink is not None:
            self._sink.push(body)
        elif not self._body:
            self._body = body
        elif isinstance(self._body, bytearray):
            self._body += body
        else:
            buffer = bytearray(self._body)
            buffer += body
            self._body = buffer

    def on_message_complete(self) -> None:
        if self._complete or not self._status:  # an interim 1xx answer: the real one follows
            return
        self._finish()
        if not self._parser.should_keep_alive():
            self.close()

    # --- ----------------------------------------------------------------------------------

    def _check_request_id(self, fields: Fields) -> None:
        """An echoed `X-Request-Id` that is not ours: this answer is another request's."""
        for name, value in fields:
            if len(name) == 12 and name.lower() == b"x-request-id" and value != self._expect_id:
                raise ProtocolViolation("the response answers another request (X-Request-Id)")

    def _finish(self) -> None:
        self._complete = True
        timer = self._timer  # `_stop_timer` inline: every answer ends here
        if timer is not None:
            timer.cancel()
            self._timer = None
        sink = self._sink
        if sink is not None:
            self._sink = None
            sink.end(self._trailers or [])
            return
        body, self._body = self._body, b""
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._headers, body))

    def _fail(self, exc: TransportError) -> None:
        waiter = self._waiter
        sink = self._sink
        self._waiter = None
        self._sink = None
        self._body = b""
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        elif sink is not None:
            sink.fail(exc)

    def _framed(self) -> bool:
        """Content-Length, or chunked as the last coding: the body's end is known without
        waiting for EOF (`Transfer-Encoding: gzip` alone is read until the close)."""
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return True
            if lowered == b"transfer-encoding" and value.rstrip().lower().endswith(b"chunked"):
                return True
        return False

    def _expire(self) -> None:
        self._timer = None
        self._fail(TimedOut("no complete response in time"))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _violation(exc: Exception) -> TransportError:
    """What the parser raised, as our error: a callback's own error, or a malformed response."""
    if isinstance(exc, TransportError):
        return exc
    cause = exc.__context__  # what a callback below raised, if one did
    if isinstance(cause, TransportError):
        return cause
    if isinstance(exc, httptools.HttpParserUpgrade):
        return ProtocolViolation("an upgrade (101) to a request that asked for none")
    return ProtocolViolation(f"malformed HTTP response: {exc}")
