"""Streamed exchanges: a response body read as its consumer goes, a request body sent from an
async iterator; what REST passthrough needs to forward large bodies without holding them.

Backpressure both ways, so memory per stream stays bounded whatever the sizes:

- reading: the connection pushes body pieces into a `BodyStream`; past `HIGH_WATER` bytes not
  yet consumed it pauses reading from the socket (the upstream's TCP window fills and it
  waits), and resumes once the consumer has taken all but `LOW_WATER` of them;
- writing: a request body piece is written, then the writer waits while the transport's
  buffer is full (`Connection.drain`).

A request body sent from an iterator cannot be sent again (the iterator is spent): an exchange
with one is a single attempt, never retried. Without a request body, the retry layer may send
it again when the first attempt failed before its response head (`bff.upstream.retry`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Callable
from types import TracebackType
from typing import Any

from bff.upstream.http11 import Answer, Connection, Fields, Headers, TimedOut, TransportError
from bff.upstream.request import InvalidRequest

HIGH_WATER = 256 * 1024  # bytes buffered for a lagging consumer before reading pauses
LOW_WATER = 64 * 1024  # reading resumes when the consumer has brought it down to this


class BodyStream:
    """The body of one streamed response, between the connection and its consumer."""

    def __init__(self, conn: Connection, read_timeout: float) -> None:
        self.conn = conn
        self.read_timeout = read_timeout
        self.trailers: Fields = []
        self.finished = False  # the whole body arrived (the connection may be reused)
        self.keep_connection = True  # False when the request body was not sent whole
        self.paused = False
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._error: TransportError | None = None
        self._wakeup: asyncio.Future[None] | None = None

    # --- from the connection ---------------------------------------------------------------

    def push(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._buffered += len(piece)
        if self._buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.conn.pause_reading()
        self._wake()

    def end(self, trailers: Fields) -> None:
        self.trailers = trailers
        self.finished = True
        self._wake()

    def fail(self, exc: TransportError) -> None:
        self._error = exc
        self._wake()

    # --- for the consumer ------------------------------------------------------------------

    @property
    def failure(self) -> TransportError | None:
        """What cut the body short (a reset, a time-out); None while it has not, or once the
        whole body arrived."""
        return None if self.finished else self._error

    @property
    def drained(self) -> bool:
        """Whether the whole body arrived and was handed out."""
        return self.finished and not self._pieces

    def take_whole(self) -> bytes | None:
        """The whole body if it has all arrived and is at most one piece (most answers come
        with their head), handed out at once; None otherwise (read it with `next`)."""
        pieces = self._pieces
        if not self.finished or len(pieces) > 1:
            return None
        if not pieces:
            return b""
        piece = pieces.popleft()
        self._buffered = 0
        if self.paused:
            self.paused = False
            self.conn.resume_reading()
        return piece

    async def next(self) -> bytes | None:
        """The next piece of the body, None at its end; a TransportError if it failed."""
        while True:
            if self._pieces:
                piece = self._pieces.popleft()
                self._buffered -= len(piece)
                if self.paused and self._buffered <= LOW_WATER:
                    self.paused = False
                    self.conn.resume_reading()
                return piece
            if self._error is not None:
                raise self._error
            if self.finished:
                return None
            loop = asyncio.get_running_loop()
            self._wakeup = wakeup = loop.create_future()
            timer = loop.call_later(self.read_timeout, self._expire)
            try:
                await wakeup
            finally:
                timer.cancel()
                self._wakeup = None

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _expire(self) -> None:
        self.conn.abort(TimedOut(f"no more of the response body in {self.read_timeout} s"))


class StreamedResponse:
    """Status and headers at once; the body as an async iterator of pieces; trailers (apart
    from the headers) once the body is read. `aclose()` gives the connection back when the
    body was read whole, and closes it otherwise. Usable as `async with`."""

    def __init__(
        self, status: int, fields: Fields, body: BodyStream, release: Callable[[], None]
    ) -> None:
        self.status = status
        self.headers = Headers(fields)
        self.instance: Any = None  # the `Instance` that answered, set by `BalancedTransport`
        self._body = body
        self._release: Callable[[], None] | None = release
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the exchange is over (body read, failed, or `aclose()`): the
        layers of the transport stack end their accounting and spans there."""
        self._on_close.append(callback)

    @property
    def trailers(self) -> Headers:
        """Trailer fields (empty until the body is read to its end, and usually after)."""
        return Headers(self._body.trailers)

    @property
    def failure(self) -> TransportError | None:
        """What cut the body short (a reset, a time-out), None if nothing did: an `on_close`
        callback tells a failed exchange from a read or abandoned one."""
        return self._body.failure

    @property
    def at_end(self) -> bool:
        """Whether the body has been read to its end (the next read would stop): a relay can
        mark the piece it just took as the last one."""
        return self._body.drained

    def take_whole(self) -> bytes | None:
        """The whole body when it already arrived in one piece (the caller then needs no
        iteration, and the connection is given back); None when it must be iterated."""
        whole = self._body.take_whole()
        if whole is not None:
            self._give_back()
        return whole

    def __aiter__(self) -> StreamedResponse:
        return self

    async def __anext__(self) -> bytes:
        try:
            piece = await self._body.next()
        except TransportError:
            self._give_back()
            raise
        if piece is None:
            self._give_back()
            raise StopAsyncIteration
        return piece

    async def aread(self) -> bytes:
        """The rest of the body at once (tests, small bodies)."""
        return b"".join([piece async for piece in self])

    async def aclose(self) -> None:
        self._give_back()

    async def __aenter__(self) -> StreamedResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._give_back()

    def _give_back(self) -> None:
        release = self._release
        if release is None:
            return
        self._release = None
        body = self._body
        if not (body.finished and body.keep_connection):
            body.conn.close()  # bytes of this response may still come: no one else's answer
        release()
        for callback in self._on_close:  # innermost layer first: it registered first
            callback()


async def send_body(
    conn: Connection,
    body: AsyncIterable[bytes],
    content_length: int | None,
    answer: asyncio.Future[Answer],
    sink: BodyStream,
) -> None:
    """Write a request body from `body`, waiting while the transport's buffer is full.

    Stops early when the upstream has already answered or failed (a 413 before the end of an
    upload): the connection is then not reused, since the upstream's view of the request's
    end is unknown. A body that does not match its `content_length` is refused (more bytes
    would be read by the upstream as another request) and the connection closed.
    """
    sent = 0
    async for piece in body:
        if answer.done() or conn.closed:
            sink.keep_connection = False
            return
        if not piece:
            continue
        sent += len(piece)
        if content_length is None:
            conn.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        elif sent <= content_length:
            conn.write(piece)
        else:
            conn.close()
            raise InvalidRequest("the request body is longer than its Content-Length")
        await conn.drain()
    if content_length is None:
        conn.write(b"0\r\n\r\n")
    elif sent != content_length:
        conn.close()
        raise InvalidRequest("the request body is shorter than its Content-Length")
