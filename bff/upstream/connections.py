"""`ConnectionPool`: the keep-alive connections to ONE upstream instance, at most `limit` open.

Why per instance and this small: the work per request must not grow with the number of
connections (httpx's pool scans its connections on every request). Here taking an idle
connection is a list pop, giving it back is an append (LIFO, so the warmest connection is
reused and surplus ones age out), and a request over the limit waits in a FIFO queue until a
connection or a free slot is handed to it directly.

Invariant: `_open` counts slots in use: connections idle, busy or being opened, plus slots
handed to a waiter that is about to open one. It never exceeds `limit`.

Nothing here is bound to an event loop when built (pools are built before the server's loop
runs); the loop is taken on first use. `aclose` closes the pool for its loop: every connection
is closed and later calls fail, so that no connection outlives the loop. A pool used from a
new loop (a server started again, a test's next `asyncio.run`) starts afresh there.

An `https://` instance is reached with its upstream's `TlsClient` (`bff.upstream.tls`: one
context per upstream, built at start-up); a handshake that fails is `TlsFailed`, logged with
its reason (at most once a minute per instance and reason), never retried without TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections import deque
from collections.abc import AsyncIterable
from urllib.parse import urlsplit

from bff.upstream.failures import tls_reason
from bff.upstream.http11 import (
    MAX_BODY,
    Answer,
    ConnectFailed,
    Connection,
    ConnectionLost,
    ConnectTimedOut,
    TimedOut,
    TlsFailed,
    TransportError,
)
from bff.upstream.request import InvalidRequest, Request
from bff.upstream.streaming import BodyStream, StreamedResponse, send_body
from bff.upstream.tls import TlsClient, system_tls

log = logging.getLogger("bff.upstream")

# Seconds an idle connection is kept: under the 5 s keep-alive of uvicorn and Node, so we
# rarely pick a connection the server is closing at that very moment.
KEEPALIVE_EXPIRY = 4.0
TLS_LOG_EVERY = 60.0  # seconds between two log lines of the same TLS failure of one instance


class ConnectionPool:
    """Sends requests to one instance over reused connections, queueing past `limit`."""

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        connect_timeout: float,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        max_body: int = MAX_BODY,
        tls: TlsClient | None = None,
        upstream: str = "",
    ) -> None:
        """`tls` is how an `https://` URL is reached (default: the system's CAs, full
        checks); `upstream` names the pool's upstream in log lines."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL must be http(s)://host[:port], got {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.upstream = upstream
        self.tls: TlsClient | None = (tls or system_tls()) if parts.scheme == "https" else None
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_body = max_body
        self._prefix = parts.path.rstrip("/").encode("ascii")
        self._host_field = parts.netloc.rpartition("@")[2].encode("idna")
        self._tls_logged: tuple[str, float] = ("", 0.0)  # the last TLS failure logged, when
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._every: set[Connection] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def tracked_connections(self) -> int:
        """Connections this pool keeps track of (to close them): never more than are open."""
        return len(self._every)

    async def send(self, request: Request, deadline: float) -> Answer:
        """One attempt: the request on one connection, the whole response buffered.

        `deadline` (loop time) bounds everything: waiting for a slot, connecting, the answer.
        A reused connection that closes before any byte of the answer raises
        `StaleConnection` (the server closed it while idle); sending again is the caller's
        decision, so every attempt is visible above this pool.
        """
        data = b"%b %b%b HTTP/1.1\r\nHost: %b\r\n%b\r\n%b" % (
            request.method.encode("ascii"),
            self._prefix,
            request.target,
            self._host_field,
            request.fields,
            request.body,
        )
        conn = self._idle_now()
        if conn is None:
            conn = await self._acquire(deadline)
        fresh = not conn.used
        try:
            return await conn.exchange(
                data,
                deadline,
                head_only=request.method == "HEAD",  # `head_only`, without the property call
                expect_id=request.request_id,
            )
        except (TlsFailed, ConnectionLost) as exc:
            failure = self._tls_refusal(exc, fresh)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self._release(conn)

    async def stream(
        self,
        request: Request,
        deadline: float,
        *,
        body: AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float = 30.0,
        max_body: int | None = None,
    ) -> StreamedResponse:
        """One attempt whose response body is read as the caller consumes it.

        `deadline` bounds sending the request and receiving the response head; each wait for
        more of the body is bounded by `read_timeout`, and reading from the upstream pauses
        while the caller lags behind (backpressure). A request `body` comes from an async
        iterator (framed by `content_length`, or chunked when it is None; build the request
        with `streamed=True`); it is sent once and never again. The caller must `aclose()` the
        response (or read it to the end), which gives the connection back or closes it. The
        body is not held, so its size is not limited unless `max_body` says so.
        """
        if body is not None and _framed(request):
            raise InvalidRequest("a streamed body needs a request built with streamed=True")
        conn = await self._acquire(deadline)
        fresh = not conn.used
        sink = BodyStream(conn, read_timeout)
        answer: asyncio.Future[Answer] | None = None
        try:
            head = self._encode(request, body is not None, content_length)
            answer = conn.exchange(
                head if body is not None else head + request.body,
                deadline,
                head_only=request.head_only,
                expect_id=request.request_id,
                sink=sink,
                max_body=sys.maxsize if max_body is None else max_body,
            )
            if body is not None:
                try:
                    async with asyncio.timeout_at(deadline):
                        await send_body(conn, body, content_length, answer, sink)
                except TimeoutError as exc:
                    raise TimedOut("the request body was not sent in time") from exc
            status, fields, _ = await answer
        except BaseException as exc:
            conn.close()
            self._release(conn)
            if answer is not None:  # the error raised here says what went wrong
                if answer.done() and not answer.cancelled():
                    answer.exception()
                else:
                    answer.cancel()
            if isinstance(exc, TlsFailed | ConnectionLost):
                failure = self._tls_refusal(exc, fresh)
                if failure is not exc:
                    raise failure from exc
            raise
        return StreamedResponse(status, fields, sink, lambda: self._release(conn))

    def _encode(
        self, request: Request, streamed: bool = False, content_length: int | None = None
    ) -> bytes:
        """The request's head for this instance: request line, `Host`, fields, blank line."""
        framing = b""
        if streamed:
            framing = (
                b"Transfer-Encoding: chunked\r\n"
                if content_length is None
                else b"Content-Length: %d\r\n" % content_length
            )
        return b"%b %b%b HTTP/1.1\r\nHost: %b\r\n%b%b\r\n" % (
            request.method.encode("ascii"),
            self._prefix,
            request.target,
            self._host_field,
            request.fields,
            framing,
        )

    async def aclose(self) -> None:
        """Close every connection, busy ones included; queued and later calls fail."""
        self._closed = True
        self._open -= len(self._idle)  # busy connections give their slots back as they fail
        self._idle.clear()
        for conn in list(self._every):
            conn.close()
            if self.tls is not None and conn.transport is not None:
                conn.transport.abort()  # no TLS close_notify exchange that outlives the loop
        self._every.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectFailed(f"the pool of {self.url} is closed"))
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks

    # --- slots -----------------------------------------------------------------------------

    def _idle_now(self) -> Connection | None:
        """A kept-alive connection still fresh, taken without a coroutine (`_acquire`'s
        common case); None when a connection must be waited for or opened."""
        idle = self._idle
        if not idle or self._loop is not asyncio.get_running_loop():
            return None
        now, expiry = self._loop.time(), self.keepalive_expiry
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < expiry:
                return conn
            self._forget(conn)
            self._open -= 1
        return None

    async def _acquire(self, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if self._closed:
            raise ConnectFailed(f"the pool of {self.url} is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and loop.time() - conn.idle_since < self.keepalive_expiry:
                return conn
            self._forget(conn)
            self._open -= 1
        if self._open < self.limit:
            self._open += 1
        else:
            handed = await self._wait_for_slot(loop, deadline)
            if handed is not None:
                return handed
        try:
            return await self._connect(deadline)
        except BaseException:
            self._free_slot()
            raise

    async def _wait_for_slot(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> Connection | None:
        """Queue until a connection (or a free slot: None) is handed over, FIFO."""
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back(waiter.result())  # handed over just as we gave up
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                message = f"no free connection to {self.url} in time"
                raise TimedOut(message, request_sent=False) from exc
            raise

    def _release(self, conn: Connection) -> None:
        """Back to the pool if it may carry another request; otherwise its slot is freed."""
        if conn.reusable and not self._closed:
            waiters = self._waiters
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            conn.idle_since = self._loop.time() if self._loop else 0.0
            self._idle.append(conn)
        else:
            self._forget(conn)
            self._free_slot()

    def _give_back(self, handed: Connection | None) -> None:
        if handed is None:
            self._free_slot()
        else:
            self._release(handed)

    def _free_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter, which connects
                return
        self._open -= 1

    def _forget(self, conn: Connection) -> None:
        conn.close()
        self._every.discard(conn)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take `loop` as ours; connections of a previous loop cannot be used from this one."""
        for conn in self._every:
            with contextlib.suppress(RuntimeError):  # "Event loop is closed": nothing to do
                conn.close()
        self._every = set()
        self._idle = []
        self._waiters = deque()
        self._open = 0
        self._closed = False
        self._loop = loop

    # --- connecting ------------------------------------------------------------------------

    async def _connect(self, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls = self.tls
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.connect_timeout)):
                transport, conn = await loop.create_connection(
                    lambda: Connection(self.max_body),
                    self.host,
                    self.port,
                    ssl=tls.context if tls else None,
                    server_hostname=(tls.server_name or self.host) if tls else None,
                )
        except TimeoutError as exc:
            raise ConnectTimedOut(f"connecting to {self.url} timed out") from exc
        except ssl.SSLError as exc:  # before OSError, of which it is one
            failed = TlsFailed(f"TLS handshake failed: {tls_reason(exc)}")
            self._report_tls(failed)
            raise failed from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.url}: {exc}") from exc
        conn.transport = transport  # uvloop calls connection_made only after returning
        self._every.add(conn)
        return conn

    def _tls_refusal(self, exc: TransportError, fresh: bool) -> TransportError:
        """A failure of the first exchange on a new TLS connection, logged as a TLS problem.

        TLS 1.3 ends the handshake for the client before the server has checked the client's
        certificate, so a refusal comes as an alert (`TlsFailed`) or, from servers that send
        none, as a close without an answer: that one keeps its type, with a hint added.
        """
        if isinstance(exc, TlsFailed):
            self._report_tls(exc)
            return exc
        tls = self.tls
        if tls is None or not fresh or not isinstance(exc, ConnectionLost) or exc.received:
            return exc
        if tls.client_certificate:
            return exc
        hinted = ConnectionLost(
            f"{exc}, right after the TLS handshake: does it require a client certificate? "
            "(set tls.cert_file)",
            received=False,
        )
        self._report_tls(hinted)
        return hinted

    def _report_tls(self, exc: TransportError) -> None:
        """One warning per instance and reason a minute: a failing handshake is a config or
        certificate problem an operator must see, but not once per request."""
        reason = str(exc)
        now = self._loop.time() if self._loop else 0.0
        last, when = self._tls_logged
        if reason == last and now - when < TLS_LOG_EVERY:
            return
        self._tls_logged = (reason, now)
        log.warning("upstream %s, instance %s: %s", self.upstream or "-", self.url, reason)


def _framed(request: Request) -> bool:
    """Whether the request already frames a body of its own (which a stream would contradict)."""
    return bool(request.body) or b"\ncontent-length:" in b"\n" + request.fields.lower()
