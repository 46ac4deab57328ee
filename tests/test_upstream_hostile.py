"""The upstream client against hostile upstreams and hostile input (issue 13).

Each scenario runs on asyncio's loop and on uvloop, against `tests.hostile.Hostile`, a
loopback server whose first connection misbehaves as scripted and whose later connections
answer normally. Each test checks the outcome, whether the connection was reused (the
server's accepted-connection count), that nothing reached the event loop's exception handler,
and, for the slow attacks, that another request completes while the hostile one is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from bff.errors import BadUpstreamResponse, BadUserInput, UpstreamUnavailable
from bff.upstream import Instance, UpstreamPool
from bff.upstream.connections import ConnectionPool
from bff.upstream.http11 import (
    MAX_HEAD_BYTES,
    ConnectFailed,
    ConnectionLost,
    ResponseTooLarge,
    StaleConnection,
)
from bff.upstream.request import InvalidRequest, build_request
from tests.hostile import Hostile, Peer, Script, response, serve_each

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a scenario on a fresh loop of the parametrized kind; fails if anything reached
    the loop's exception handler (a parser error escaping a protocol callback does)."""
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
    async def hang_up(peer: Peer) -> None:
        await peer.request()

    async def scenario() -> Hostile:
        async with Hostile(hang_up) as server:
            pool = pool_of(server)
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


# --- hostile input: nothing the caller writes may split the request ------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", {}),
        ("GET\r\n", {}),
        ("G T", {}),
        ("GET", {"Content-Length ": "5"}),
        ("GET", {"Transfer-Encoding\t": "chunked"}),
        ("GET", {"X-A: 1\r\nX-Admin": "yes"}),
        ("GET", {"X-User-Id: 7\r\nX": "y"}),
        ("GET", {"X-Spoof: 1": "2"}),
        ("GET", {"": "empty name"}),
        ("GET", {"X-A": "1\r\nX-Admin: yes"}),
        ("GET", {"X-A": "1\nGET / HTTP/1.1"}),
        ("GET", {"X-A": "nul\0byte"}),
    ],
)
def test_input_that_could_split_the_request_is_bad_user_input(
    run: Run, method: str, headers: dict[str, str]
) -> None:
    async def scenario() -> Hostile:
        async with Hostile(serve_each(response())) as server:
            pool = pool_of(server)
            try:
                with pytest.raises(BadUserInput) as caught:
                    await pool.request(method, "/", headers=headers)
                assert caught.value.status == 400 and caught.value.code == "BAD_USER_INPUT"
                assert "\r" not in caught.value.message and "yes" not in caught.value.message
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).received == []  # nothing reached the upstream


def test_hop_by_hop_and_framing_fields_of_the_caller_are_dropped(run: Run) -> None:
    headers = {
        "Connection": "X-Secret, close",
        "X-Secret": "hop",
        "Keep-Alive": "timeout=1",
        "TE": "trailers",
        "Trailer": "X-B",
        "Upgrade": "websocket",
        "Proxy-Authorization": "Basic x",
        "transfer-encoding": "chunked",
        "CONTENT-LENGTH": "9",
        "host": "evil",
        "X-Kept": "yes",
    }

    async def scenario() -> dict[str, str]:
        async with Hostile(serve_each(response())) as server:
            pool = pool_of(server)
            try:
                await pool.request("POST", "/", headers=headers)
            finally:
                await pool.aclose()
        return server.received[0].headers

    seen = run(scenario())
    assert seen["x-kept"] == "yes"
    assert seen["content-length"] == "0" and seen["host"] != "evil"
    dropped = {"connection", "x-secret", "keep-alive", "te", "trailer", "upgrade"}
    assert not dropped & seen.keys()
    assert "proxy-authorization" not in seen and "transfer-encoding" not in seen


def test_with_header_refuses_what_could_split_or_reframe() -> None:
    request = build_request("GET", "/")
    for name, value in [("X", "a\r\nB: 2"), ("X\n", "1"), ("a:b", "1"), ("x", "\0")]:
        with pytest.raises(InvalidRequest):
            request.with_header(name, value)
    with pytest.raises(InvalidRequest):
        request.with_header("Content-Length", "1")
    assert request.with_header("X-Request-Id", "r1").request_id == b"r1"


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


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


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
