"""An adversarial upstream on loopback, and the helpers of the tests that use it: each
connection is served by a script that writes whatever raw bytes a test wants (endless heads,
late extra answers, 101s, trailers...).

The server records what reached it and what became of each connection, so tests assert on
the wire: which requests arrived on which connection, whether the client closed it, how many
bytes the server managed to write (backpressure). Request bodies framed by Content-Length or
chunked are read whole.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from bff.upstream import Instance, UpstreamPool
from bff.upstream.connections import ConnectionPool

LOOPS = ["asyncio", "uvloop"]
Run = Callable[[Coroutine[Any, Any, Any]], Any]


@dataclass
class Received:
    """One request as it reached the server."""

    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    raw_head: bytes
    body: bytes
    connection: int  # 1 for the first accepted connection
    index: int  # 1 for the first request on its connection


class Peer:
    """The server's side of one connection, handed to the script."""

    def __init__(
        self,
        server: Hostile,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.number = number
        self.reader = reader
        self.writer = writer
        self.requests = 0
        self.written = 0

    async def request(self) -> Received | None:
        """The next request on this connection, None when the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = line.split(" ")
        headers: dict[str, str] = {}
        for text in lines:
            name, _, value = text.partition(":")
            headers[name.lower()] = value.strip()
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunked()
            else:
                body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None  # the client gave up half-way through the body
        self.requests += 1
        seen = Received(method, target, headers, head, body, self.number, self.requests)
        self.server.received.append(seen)
        return seen

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def send(self, data: bytes) -> None:
        """Write and wait until the client's window takes it (backpressure reaches here)."""
        self.writer.write(data)
        await self.writer.drain()
        self.written += len(data)

    async def client_closed(self) -> None:
        """Wait until the client hangs up."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass


Script = Callable[[Peer], Awaitable[None]]


@dataclass
class Hostile:
    """A loopback server running `script` on every connection it accepts."""

    script: Script
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    open_now: int = 0
    peers: list[Peer] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> Hostile:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in self.peers:
            peer.writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        self.open_now += 1
        peer = Peer(self, self.accepted, reader, writer)
        self.peers.append(peer)
        try:
            await self.script(peer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client hung up, or the server stops: either ends this script
        finally:
            self.open_now -= 1
            writer.close()


def serve_each(*answers: bytes) -> Script:
    """Answer every request of a connection with the next of `answers` (the last repeats)."""

    async def script(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            await peer.send(answers[min(seen.index, len(answers)) - 1])

    return script


def response(body: bytes = b'{"ok":true}', *fields: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{line}\r\n" for line in fields)
    return b"HTTP/1.1 %b\r\nContent-Length: %d\r\n%b\r\n%b" % (
        status.encode(),
        len(body),
        head.encode(),
        body,
    )


# --- helpers of the hostile tests ----------------------------------------------------------


def loop_runner(request: pytest.FixtureRequest) -> Run:
    """The `run` fixture of the hostile tests (each module declares it with
    `run = pytest.fixture(params=LOOPS)(loop_runner)`): runs a scenario on a fresh loop of the
    parametrized kind, and fails if anything reached the loop's exception handler (a parser
    error escaping a protocol callback does)."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run_it(scenario: Coroutine[Any, Any, Any]) -> Any:
        reported: list[dict[str, Any]] = []

        async def guarded() -> Any:
            asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
            return await scenario

        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(guarded())
        assert reported == []
        return result

    return run_it


def first_connection(script: Script) -> Script:
    """`script` on the first connection; later connections answer every request normally."""
    normal = serve_each(response())

    async def dispatch(peer: Peer) -> None:
        await (script if peer.number == 1 else normal)(peer)

    return dispatch


def pool_of(server: Hostile, **options: Any) -> UpstreamPool:
    return UpstreamPool("svc", [Instance(server.url)], **options)


def connections(pool: UpstreamPool) -> ConnectionPool:
    return pool.transport.pool_of(pool.instances[0])


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in 5 s")


async def other_request_completes(during: asyncio.Future[Any]) -> None:
    """A request to a well-behaved server completes while `during` is still in flight."""
    async with Hostile(serve_each(response(b"[1]"))) as good:
        pool = pool_of(good)
        try:
            assert (await pool.request("GET", "/")).json() == [1]
        finally:
            await pool.aclose()
    assert not during.done()


async def after_a_hostile_call(
    script: Script, expected: type[Exception], **options: Any
) -> Hostile:
    """Calls once against `script` (expecting `expected`), then once normally; returns the
    server, whose `accepted` says whether the hostile connection was reused."""
    async with Hostile(first_connection(script)) as server:
        pool = pool_of(server, **options)
        try:
            with pytest.raises(expected):
                await pool.request("GET", "/")
            assert (await pool.request("GET", "/")).json() == {"ok": True}
            assert connections(pool).open_connections == 1
        finally:
            await pool.aclose()
    return server


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    """A request body from an async iterator, one part per step of the loop."""
    for part in parts:
        await asyncio.sleep(0)
        yield part
