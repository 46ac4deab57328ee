"""The response head held for its body (`bff.serving.held_head`): one write for an answer
that is whole at once, and a head whose body waits still goes out on its own."""

from __future__ import annotations

import asyncio
import socket
import threading

from starlette.types import Receive, Scope, Send

from bff.serving import BackgroundServer
from bff.serving.held_head import HeldHead
from tests.edge_wire import WAIT, connect, head, read_response, send_all


class Recording:
    """A transport that keeps what it was asked to write, each call apart."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, ...]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append((data,))

    def writelines(self, pieces: tuple[bytes, ...]) -> None:
        self.calls.append(tuple(pieces))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def held(transport: Recording, loop: asyncio.AbstractEventLoop) -> HeldHead:
    return HeldHead(transport, loop)  # type: ignore[arg-type]


def test_a_head_and_its_body_leave_in_one_call_then_writes_pass_straight() -> None:
    async def scenario() -> list[tuple[bytes, ...]]:
        transport = Recording()
        wrapper = held(transport, asyncio.get_running_loop())
        wrapper.arm()
        wrapper.write(b"HEAD")
        assert transport.calls == []
        wrapper.write(b"body")
        wrapper.write(b"more")
        await asyncio.sleep(0)  # the scheduled flush finds nothing held
        return transport.calls

    assert asyncio.run(scenario()) == [(b"HEAD", b"body"), (b"more",)]


def test_a_held_head_goes_out_at_the_next_turn_and_before_a_close() -> None:
    async def scenario() -> tuple[list[tuple[bytes, ...]], list[tuple[bytes, ...]]]:
        loop = asyncio.get_running_loop()
        first = Recording()
        wrapper = held(first, loop)
        wrapper.arm()
        wrapper.write(b"HEAD")
        await asyncio.sleep(0)
        second = Recording()
        closing = held(second, loop)
        closing.arm()
        closing.write(b"HEAD")
        closing.close()
        return first.calls, second.calls

    first, second = asyncio.run(scenario())
    assert first == [(b"HEAD",)]
    assert second == [(b"HEAD",)]


def test_a_head_whose_body_waits_reaches_the_client_before_the_body() -> None:
    released = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        fields = [(b"content-length", b"5"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        await asyncio.to_thread(released.wait, WAIT)
        await send({"type": "http.response.body", "body": b"later"})

    with BackgroundServer(app) as server, connect(server.url) as sock:
        send_all(sock, head("GET", "/stream"))
        seen = b""
        while b"\r\n\r\n" not in seen:
            try:
                piece = sock.recv(65536)
            except TimeoutError:  # the head never came on its own
                break
            seen += piece
        released.set()
        assert seen.startswith(b"HTTP/1.1 200"), seen
        assert b"later" not in seen
        rest = seen.partition(b"\r\n\r\n")[2]
        while len(rest) < 5:
            rest += sock.recv(65536)
        assert rest == b"later"


def test_keep_alive_answers_stay_whole_and_in_order() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = scope["path"].encode()
        fields = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        await send({"type": "http.response.body", "body": body})

    with BackgroundServer(app) as server, connect(server.url) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for n in range(20):
            send_all(sock, head("GET", f"/n{n}"))
            status, _, body = read_response(sock)
            assert (status, body) == (200, f"/n{n}".encode())
        send_all(sock, b"".join(head("GET", f"/p{n}") for n in range(5)))  # pipelined
        answers = [read_response(sock)[2] for _ in range(5)]
        assert answers == [f"/p{n}".encode() for n in range(5)]
