"""One attempt per `ConnectionPool.send` (issue 7's seam): stale connections are reported,
fresh ones that reset are never resent, and no dead connection stays in the pool's books.

Each scenario runs on asyncio's loop and on uvloop against `tests.hostile.Hostile`, a
loopback server that misbehaves as scripted; tests check the outcome, whether the connection
was reused (the server's accepted-connection count) and that nothing reached the event loop's
exception handler.
"""

from __future__ import annotations

import asyncio

import pytest

from bff.errors import UpstreamUnavailable
from bff.upstream.connections import ConnectionPool
from bff.upstream.http11 import (
    ConnectFailed,
    ConnectionLost,
    StaleConnection,
)
from bff.upstream.request import build_request
from tests.hostile import (
    LOOPS,
    Hostile,
    Peer,
    Run,
    connections,
    loop_runner,
    pool_of,
    response,
    serve_each,
    wait_until,
)

run = pytest.fixture(params=LOOPS)(loop_runner)


# --- retries and the pool's bookkeeping ------------------------------------------------------


def test_send_makes_one_attempt_and_reports_a_stale_connection(run: Run) -> None:
    async def close_on_second(peer: Peer) -> None:
        await peer.request()
        await peer.send(response())
        await peer.request()  # then hang up without answering

    async def scenario() -> Hostile:
        async with Hostile(close_on_second) as server:
            pool = ConnectionPool(server.url, limit=1, connect_timeout=1)
            deadline = asyncio.get_running_loop().time() + 5
            try:
                await pool.send(build_request("GET", "/"), deadline)
                with pytest.raises(StaleConnection) as caught:
                    await pool.send(build_request("GET", "/"), deadline)
                assert caught.value.request_sent
                assert pool.open_connections == 0 and pool.tracked_connections == 0
            finally:
                await pool.aclose()
        return server

    server = run(scenario())
    assert (server.accepted, len(server.received)) == (1, 2)


def test_a_fresh_connection_that_resets_is_not_retried(run: Run) -> None:
    """Below the retry policy, nothing resends: with `retries.attempts: 1` a request that a
    brand-new connection carried before it reset is sent once (the retry layer may resend an
    idempotent one, within its budget; tests/test_pool_decisions.py)."""

    async def hang_up(peer: Peer) -> None:
        await peer.request()

    async def scenario() -> Hostile:
        async with Hostile(hang_up) as server:
            pool = pool_of(server, attempts=1)
            try:
                for method in ("GET", "PUT"):
                    with pytest.raises(UpstreamUnavailable) as caught:
                        await pool.request(method, "/")
                    lost = caught.value.__cause__
                    assert isinstance(lost, ConnectionLost)
                    assert not isinstance(lost, StaleConnection)
            finally:
                await pool.aclose()
        return server

    server = run(scenario())
    assert [r.method for r in server.received] == ["GET", "PUT"]  # each sent once


def test_stale_connections_leave_no_dead_entries_behind(run: Run) -> None:
    """The server drops every kept-alive connection as its second request comes: each call
    after the first meets a stale connection and is sent again on a fresh one."""

    async def one_answer_per_connection(peer: Peer) -> None:
        await peer.request()
        await peer.send(response())
        await peer.request()

    async def scenario() -> tuple[Hostile, int]:
        async with Hostile(one_answer_per_connection) as server:
            pool = pool_of(server, max_connections=2)
            try:
                for _ in range(40):
                    assert (await pool.request("GET", "/")).status == 200
                await wait_until(lambda: server.open_now <= 1)
                tracked = connections(pool).tracked_connections
            finally:
                await pool.aclose()
        return server, tracked

    server, tracked = run(scenario())
    assert tracked <= 1  # the live one; the 39 dead ones are forgotten
    assert server.accepted == 40
    assert len(server.received) == 79  # 39 requests reached a closing connection once


def test_a_refused_connect_says_no_byte_was_sent(run: Run) -> None:
    async def scenario() -> None:
        async with Hostile(serve_each(response())) as server:
            url = server.url
        pool = ConnectionPool(url, limit=1, connect_timeout=1)
        deadline = asyncio.get_running_loop().time() + 5
        try:
            with pytest.raises(ConnectFailed) as caught:
                await pool.send(build_request("GET", "/"), deadline)
            assert not caught.value.request_sent
        finally:
            await pool.aclose()

    run(scenario())
