"""The upstream client against hostile upstreams (issue 13): heads that never end, floods of
fields, interim and upgrade answers, answers that belong to another request, odd framing.

Each scenario runs on asyncio's loop and on uvloop against `tests.hostile.Hostile`, a
loopback server that misbehaves as scripted; tests check the outcome, whether the connection
was reused (the server's accepted-connection count) and that nothing reached the event loop's
exception handler. For the slow attacks, another request completes while the hostile one is in
flight (the event loop keeps serving).
"""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from bff.errors import BadUpstreamResponse
from bff.upstream.http11 import (
    MAX_HEAD_BYTES,
    ResponseTooLarge,
)
from bff.upstream.request import build_request
from tests.hostile import (
    LOOPS,
    Hostile,
    Peer,
    Run,
    Script,
    after_a_hostile_call,
    connections,
    first_connection,
    loop_runner,
    other_request_completes,
    pool_of,
    response,
    serve_each,
    wait_until,
)

run = pytest.fixture(params=LOOPS)(loop_runner)


# --- the head: bounded as it arrives -------------------------------------------------------


def endless(opening: bytes, gate: asyncio.Event) -> Script:
    """Writes `opening`, then a field line that never ends: half before `gate`, the rest
    after, until the client hangs up."""

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(opening)
        await peer.send(b"a" * (MAX_HEAD_BYTES // 2))
        await gate.wait()
        while True:
            await peer.send(b"a" * 16384)

    return script


@pytest.mark.parametrize(
    "opening",
    [
        b"HTTP/1.1 200 OK\r\nX-Endless: ",  # a value that never ends
        b"HTTP/1.1 200 OK\r\nX-",  # a name that never ends
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Trailer: ",
    ],
    ids=["value", "name", "trailer"],
)
def test_an_endless_header_line_fails_the_response_and_its_connection(
    run: Run, opening: bytes
) -> None:
    async def scenario() -> Hostile:
        gate = asyncio.Event()
        async with Hostile(first_connection(endless(opening, gate))) as server:
            pool = pool_of(server, total_timeout=30)
            try:
                call = asyncio.ensure_future(pool.request("GET", "/"))
                await wait_until(lambda: bool(server.peers) and server.peers[0].written > 0)
                await other_request_completes(during=call)
                gate.set()
                with pytest.raises(BadUpstreamResponse) as caught:
                    await call
                assert isinstance(caught.value.__cause__, ResponseTooLarge)
                await wait_until(lambda: server.open_now == 0)  # we hung up
                assert (await pool.request("GET", "/")).status == 200
            finally:
                await pool.aclose()
        return server

    server = run(scenario())
    assert server.accepted == 2
    # What socket buffers took in before the client gave up: a few MiB at most, where the
    # 30 s budget at loopback speed would be gigabytes.
    assert server.peers[0].written < 32 * 1024 * 1024


@pytest.mark.parametrize("count", [300, 65000])
def test_a_flood_of_header_fields_is_refused(run: Run, count: int) -> None:
    flood = b"HTTP/1.1 200 OK\r\n" + b"a:\r\n" * count + b"Content-Length: 0\r\n\r\n"
    server = run(after_a_hostile_call(serve_each(flood), BadUpstreamResponse))
    assert server.accepted == 2


# --- interim and upgrade answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n" + b"\x00" * 32,
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
    ],
    ids=["101", "101-then-bytes", "100-then-close", "103-then-close"],
)
def test_interim_or_upgrade_answers_alone_are_bad_upstream_responses(
    run: Run, answer: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer)

    server = run(after_a_hostile_call(script, BadUpstreamResponse))
    assert server.accepted == 2


def test_early_hints_then_the_answer_is_the_answer_and_the_connection_kept(run: Run) -> None:
    hinted = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + response(b"[3]")

    async def scenario() -> Hostile:
        async with Hostile(serve_each(hinted)) as server:
            pool = pool_of(server)
            try:
                for _ in range(2):
                    reply = await pool.request("GET", "/")
                    assert reply.json() == [3] and "link" not in reply.headers
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).accepted == 1


# --- the answer of another request ---------------------------------------------------------


def test_a_late_extra_response_on_an_idle_connection_closes_it(run: Run) -> None:
    extra = response(b'"not yours"')

    async def late_extra(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            await peer.send(response(seen.target.encode()))
            await asyncio.sleep(0.01)
            await peer.send(extra)

    async def scenario() -> list[str]:
        async with Hostile(late_extra) as server:
            pool = pool_of(server)
            bodies = []
            try:
                for n in range(5):
                    reply = await pool.request("GET", f"/{n}")
                    bodies.append(reply.body.decode())
                    await wait_until(lambda: server.open_now == 0)  # the extra closed it
            finally:
                await pool.aclose()
        assert server.accepted == 5
        return bodies

    assert run(scenario()) == [f"/{n}" for n in range(5)]


def test_an_extra_response_right_behind_the_answer_closes_the_connection(run: Run) -> None:
    async def doubled(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            await peer.send(response(seen.target.encode()) + response(b'"not yours"'))

    async def scenario() -> list[bytes]:
        async with Hostile(doubled) as server:
            pool = pool_of(server)
            try:
                bodies = [(await pool.request("GET", f"/{n}")).body for n in range(3)]
            finally:
                await pool.aclose()
        assert server.accepted == 3
        return bodies

    assert run(scenario()) == [b"/0", b"/1", b"/2"]


def test_a_foreign_request_id_is_refused_and_closes_the_connection(run: Run) -> None:
    """Under a steady lag every answer is the previous request's: with X-Request-Id echoed,
    no caller gets another caller's answer."""

    async def lagging(peer: Peer) -> None:
        previous = "none"
        while (seen := await peer.request()) is not None:
            await peer.send(response(previous.encode(), f"X-Request-Id: {previous}"))
            previous = seen.headers["x-request-id"]

    async def scenario() -> Hostile:
        async with Hostile(lagging) as server:
            pool = pool_of(server)
            try:
                for n in range(4):
                    with pytest.raises(BadUpstreamResponse):
                        await pool.request("GET", "/", headers={"X-Request-Id": f"r{n}"})
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).accepted == 4


def test_a_matching_request_id_keeps_the_connection(run: Run) -> None:
    async def echo(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            rid = seen.headers["x-request-id"]
            await peer.send(response(rid.encode(), f"X-Request-Id: {rid}"))

    async def scenario() -> Hostile:
        async with Hostile(echo) as server:
            pool = pool_of(server)
            try:
                for n in range(3):
                    reply = await pool.request("GET", "/", headers={"X-Request-Id": f"r{n}"})
                    assert reply.body == f"r{n}".encode()
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).accepted == 1


# --- framing ------------------------------------------------------------------------------------


def test_transfer_encoding_gzip_ended_by_close_returns_the_body(run: Run) -> None:
    async def gzip_to_eof(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nopaque-bytes")

    async def scenario() -> bytes:
        async with Hostile(first_connection(gzip_to_eof)) as server:
            pool = pool_of(server)
            try:
                return (await pool.request("GET", "/")).body
            finally:
                await pool.aclose()

    assert run(scenario()) == b"opaque-bytes"


def test_trailers_stay_apart_from_the_headers(run: Run) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n"
        b"2\r\n[]\r\n0\r\nSet-Cookie: session=stolen\r\nX-User-Id: 1\r\n\r\n"
    )

    async def scenario() -> Hostile:
        async with Hostile(serve_each(chunked)) as server:
            pool = pool_of(server)
            try:
                reply = await pool.request("GET", "/")
                assert reply.json() == []
                assert "set-cookie" not in reply.headers and "x-user-id" not in reply.headers
                request = build_request("GET", "/")
                deadline = asyncio.get_running_loop().time() + 5
                streamed = await connections(pool).stream(request, deadline)
                assert await streamed.aread() == b"[]"
                assert "set-cookie" not in streamed.headers
                assert streamed.trailers.get_list("set-cookie") == ["session=stolen"]
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).accepted == 1


def test_a_body_in_many_pieces_is_held_once(run: Run) -> None:
    """8 MiB arriving in 64 KiB writes: the buffered body is one growing buffer, never a list
    of pieces and their join (which held it twice), so the peak is about one body."""
    size, piece = 8 * 1024 * 1024, b"x" * 65536

    async def in_pieces(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(piece)):
            await peer.send(piece)

    async def scenario() -> tuple[int, int]:
        async with Hostile(first_connection(in_pieces)) as server:
            pool = pool_of(server)
            try:
                tracemalloc.start()
                try:
                    body = (await pool.request("GET", "/")).body
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                return len(body), peak
            finally:
                await pool.aclose()

    length, peak = run(scenario())
    assert length == size
    assert peak < 1.5 * size, peak
