"""Response size limits per upstream, and the streaming mode with backpressure (issue 13).

Each scenario runs on asyncio's loop and on uvloop against `tests.hostile.Hostile`, a
loopback server that misbehaves as scripted; tests check the outcome, whether the connection
was reused (the server's accepted-connection count) and that nothing reached the event loop's
exception handler.
"""

from __future__ import annotations

import asyncio

import pytest

from bff.errors import BadUpstreamResponse
from bff.upstream.connections import ConnectionPool
from bff.upstream.http11 import (
    StaleConnection,
)
from bff.upstream.request import InvalidRequest, build_request
from tests.hostile import (
    LOOPS,
    Hostile,
    Peer,
    Run,
    after_a_hostile_call,
    connections,
    first_connection,
    loop_runner,
    pieces,
    response,
    serve_each,
)

run = pytest.fixture(params=LOOPS)(loop_runner)


# --- limits and streaming ------------------------------------------------------------------------


def test_the_response_body_limit_is_per_upstream(run: Run) -> None:
    body = b"x" * 5000
    server = run(
        after_a_hostile_call(serve_each(response(body)), BadUpstreamResponse, max_body=4999)
    )
    assert server.accepted == 2


def test_the_body_limit_comes_from_the_upstream_config() -> None:
    from bff.config import settings_from_dict
    from bff.upstream import Upstreams

    upstream = {"instances": [{"url": "http://127.0.0.1:1"}], "max_response_body": "2KiB"}
    settings = settings_from_dict({"upstreams": {"svc": upstream}})
    pools = Upstreams.from_settings(settings)
    assert connections(pools["svc"]).max_body == 2048
    default = Upstreams.from_settings(
        settings_from_dict({"upstreams": {"svc": {"instances": upstream["instances"]}}})
    )
    assert connections(default["svc"]).max_body == 16 * 1024 * 1024


def test_a_streamed_response_applies_backpressure(run: Run) -> None:
    total = 64 * 1024 * 1024
    piece = bytes(range(256)) * 256  # 64 KiB

    async def flood(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            for _ in range(total // len(piece)):
                await peer.send(piece)

    async def scenario() -> Hostile:
        async with Hostile(flood) as server:
            pool = ConnectionPool(server.url, limit=1, connect_timeout=1, max_body=total)
            loop = asyncio.get_running_loop()
            try:
                streamed = await pool.stream(build_request("GET", "/"), loop.time() + 30)
                first = await anext(streamed)
                assert first and streamed.status == 200
                await asyncio.sleep(0.2)  # a consumer that lags behind
                stalled_at = server.peers[0].written
                assert stalled_at < total // 2  # reading paused: the upstream had to wait
                received = len(first)
                async for more in streamed:
                    received += len(more)
                assert received == total
                again = await pool.stream(build_request("GET", "/"), loop.time() + 30)
                await again.aclose()  # abandoned half-read: its connection is closed
            finally:
                await pool.aclose()
        return server

    server = run(scenario())
    assert server.accepted == 1  # the first stream, read whole, gave its connection back


def test_an_abandoned_stream_closes_its_connection(run: Run) -> None:
    big = response(b"y" * 1_000_000)

    async def scenario() -> Hostile:
        async with Hostile(serve_each(big)) as server:
            pool = ConnectionPool(server.url, limit=1, connect_timeout=1)
            loop = asyncio.get_running_loop()
            try:
                async with await pool.stream(build_request("GET", "/"), loop.time() + 5) as s:
                    await anext(s)
                status, _, body = await pool.send(build_request("GET", "/"), loop.time() + 5)
                assert (status, len(body)) == (200, 1_000_000)
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).accepted == 2


def test_request_bodies_stream_from_an_async_iterator(run: Run) -> None:
    async def echo_body(peer: Peer) -> None:
        while (seen := await peer.request()) is not None:
            await peer.send(response(seen.body, f"X-Framing: {seen.raw_head.count(b'chunked')}"))

    async def scenario() -> Hostile:
        async with Hostile(echo_body) as server:
            pool = ConnectionPool(server.url, limit=1, connect_timeout=1)
            loop = asyncio.get_running_loop()
            request = build_request("POST", "/upload", streamed=True)
            try:
                chunked = await pool.stream(
                    request, loop.time() + 5, body=pieces(b"ab", b"", b"cd" * 50000)
                )
                assert await chunked.aread() == b"ab" + b"cd" * 50000
                assert chunked.headers["x-framing"] == "1"
                sized = await pool.stream(
                    request, loop.time() + 5, body=pieces(b"12", b"34"), content_length=4
                )
                assert (await sized.aread(), sized.headers["x-framing"]) == (b"1234", "0")
                with pytest.raises(
                    InvalidRequest
                ):  # more than announced: refused, connection closed
                    await pool.stream(
                        request, loop.time() + 5, body=pieces(b"12", b"345"), content_length=4
                    )
                assert pool.open_connections == 0
            finally:
                await pool.aclose()
        assert [r.body for r in server.received] == [b"ab" + b"cd" * 50000, b"1234"]
        return server

    assert run(scenario()).accepted == 1  # both streamed bodies, then the refused one


def test_a_streamed_request_body_is_never_sent_again(run: Run) -> None:
    """A stale connection under a streamed upload is reported, not retried: the iterator is
    spent, and the upstream saw the body at most once."""

    async def close_on_second(peer: Peer) -> None:
        await peer.request()
        await peer.send(response())
        await peer.request()  # reads the whole upload, then hangs up without answering

    async def scenario() -> Hostile:
        async with Hostile(first_connection(close_on_second)) as server:
            pool = ConnectionPool(server.url, limit=1, connect_timeout=1)
            loop = asyncio.get_running_loop()
            try:
                await pool.send(build_request("GET", "/warm"), loop.time() + 5)
                upload = build_request("PUT", "/upload", streamed=True)
                with pytest.raises(StaleConnection):
                    await pool.stream(upload, loop.time() + 5, body=pieces(b"once"))
                assert pool.open_connections == 0
            finally:
                await pool.aclose()
        return server

    server = run(scenario())
    assert [(r.method, r.body) for r in server.received] == [("GET", b""), ("PUT", b"once")]
    assert server.accepted == 1


def test_a_body_that_came_with_its_head_is_taken_whole_and_its_connection_reused(
    run: Run,
) -> None:
    small, big = response(b'{"ok":true}'), response(b"z" * 2_000_000)

    async def scenario() -> tuple[Hostile, list[bytes | None]]:
        async with Hostile(serve_each(small, big, small)) as server:
            pool = ConnectionPool(server.url, limit=1, connect_timeout=1)
            loop = asyncio.get_running_loop()
            taken: list[bytes | None] = []
            try:
                streamed = await pool.stream(build_request("GET", "/"), loop.time() + 5)
                taken.append(streamed.take_whole())
                large = await pool.stream(build_request("GET", "/"), loop.time() + 5)
                taken.append(large.take_whole())  # not all there yet: iterate it instead
                assert len(await large.aread()) == 2_000_000
                again = await pool.stream(build_request("GET", "/"), loop.time() + 5)
                taken.append(again.take_whole())
            finally:
                await pool.aclose()
        return server, taken

    server, taken = run(scenario())
    assert taken == [b'{"ok":true}', None, b'{"ok":true}']
    assert server.accepted == 1  # each answer, taken or read whole, gave its connection back
