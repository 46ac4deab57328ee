"""A small pipelined Redis connection for the rate limiter's hot path.

Every rate-limited request makes one Redis call, so its cost is paid per request. redis-py
spends 100-250 us of CPU per command (pool, retry and parser layers), measured on the bench
machine: more than the rest of the gateway's per-request overhead together. This client does
only what the limiter needs, on one connection: it writes commands as they come (pipelining),
answers them in order from `data_received`, and parses RESP2 replies (27-39 us a call,
syscalls included). Everything else that talks to Redis uses redis-py.

`call()` is synchronous: it returns a future, so a caller can hand the reply on from a done
callback without a task. A command that gets no reply within the timeout fails, with every
other one in flight, and drops the connection; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast

from redis.asyncio.connection import parse_url

CRLF = b"\r\n"


class RespError(Exception):
    """An error reply from Redis (`-NOSCRIPT ...`, `-ERR ...`)."""


class RespUnavailable(Exception):
    """No answer: cannot connect, connection lost, or the timeout passed."""


def pack(args: tuple[str | int | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse(buffer: bytes | bytearray, start: int) -> tuple[Any, int] | None:
    """One reply from `buffer` at `start`: (value, end), or `None` while it is incomplete."""
    end = buffer.find(CRLF, start)
    if end < 0:
        return None
    kind, line = buffer[start], bytes(buffer[start + 1 : end])
    position = end + 2
    if kind == 0x3A:  # ':' integer
        return int(line), position
    if kind == 0x2B:  # '+' simple string
        return line, position
    if kind == 0x2D:  # '-' error
        return RespError(line.decode("utf-8", "replace")), position
    if kind == 0x24:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, position
        if len(buffer) < position + size + 2:
            return None
        return bytes(buffer[position : position + size]), position + size + 2
    if kind == 0x2A:  # '*' array
        count = int(line)
        items: list[Any] = []
        for _ in range(max(count, 0)):
            found = parse(buffer, position)
            if found is None:
                return None
            item, position = found
            items.append(item)
        return (items if count >= 0 else None), position
    raise RespUnavailable(f"unexpected reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, data: bytes, future: asyncio.Future[Any]) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiters.append((future, loop.time() + self.timeout))
        self.transport.write(data)
        if self.timer is None:
            self.timer = loop.call_later(self.timeout, self._check_timeout)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        position = 0
        try:
            while self.waiters:
                found = parse(self.buffer, position)
                if found is None:
                    break
                value, position = found
                future = self.waiters.popleft()[0]
                if future.done():
                    continue
                if isinstance(value, RespError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except (RespUnavailable, ValueError):
            self.abort()
            return
        del self.buffer[:position]

    def _check_timeout(self) -> None:
        self.timer = None
        if not self.waiters:
            return
        loop = asyncio.get_running_loop()
        oldest = self.waiters[0][1]
        if oldest <= loop.time():
            self.abort()
        else:
            self.timer = loop.call_later(oldest - loop.time(), self._check_timeout)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # connection_lost fails whatever is still waiting

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.waiters:
            future = self.waiters.popleft()[0]
            if not future.done():
                future.set_exception(RespUnavailable(f"connection lost ({exc or 'closed'})"))


class RespClient:
    """One connection to the Redis at `url` (redis://, rediss:// or unix://), opened lazily."""

    def __init__(self, url: str, timeout: float = 0.5) -> None:
        self.options = parse_url(url)
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._backlog: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._connecting: asyncio.Task[None] | None = None

    def call(self, *args: str | int | bytes) -> asyncio.Future[Any]:
        """Send one command; its reply as a future (`RespError`, `RespUnavailable`)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            protocol.send(pack(args), future)
            return future
        self._backlog.append((pack(args), future))
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        return future

    async def _connect(self) -> None:
        try:
            protocol = await asyncio.wait_for(self._open(), self.timeout)
        except Exception as error:  # whatever it was, nobody may wait forever
            backlog, self._backlog = self._backlog, []
            for _, future in backlog:
                if not future.done():
                    future.set_exception(RespUnavailable(f"{type(error).__name__}: {error}"))
        else:
            self._protocol = protocol
            backlog, self._backlog = self._backlog, []
            for data, future in backlog:
                protocol.send(data, future)
        finally:
            self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        protocol = _Protocol(self.timeout)
        if "path" in options:
            await loop.create_unix_connection(lambda: protocol, options["path"])
        else:
            secure = options.get("connection_class") is not None
            context = ssl.create_default_context() if secure else None
            host, port = options.get("host", "127.0.0.1"), options.get("port", 6379)
            await loop.create_connection(lambda: protocol, host, port, ssl=context)
        handshake: list[asyncio.Future[Any]] = []
        for command in self._handshake():
            future: asyncio.Future[Any] = loop.create_future()
            protocol.send(pack(command), future)
            handshake.append(future)
        try:
            for future in handshake:
                await future  # an error reply (bad password, no such db) raises RespError
        except BaseException:
            protocol.abort()
            raise
        return protocol

    def _handshake(self) -> list[tuple[str | int, ...]]:
        commands: list[tuple[str | int, ...]] = []
        password, username = self.options.get("password"), self.options.get("username")
        if password is not None:
            commands.append(("AUTH", username, password) if username else ("AUTH", password))
        if self.options.get("db"):
            commands.append(("SELECT", int(self.options["db"])))
        return commands

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
