"""The upstream HTTP client against real loopback servers that misbehave on purpose.

Each test starts a tiny HTTP/1.1 server (`Scripted`) on port 0 whose answers a test writes
byte by byte: keep-alive, closing at the worst moment, chunked or unframed bodies, stalls,
garbage. The server records what reached it (request lines, headers, bodies, connections), so
tests assert on the wire, not on the client's own account. Every scenario runs on asyncio's
loop and on uvloop (the gateway's): their transports call back in different orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
import pytest
import uvloop

from bff.errors import BadUpstreamResponse, UpstreamTimeout, UpstreamUnavailable
from bff.upstream import Headers, Instance, UpstreamPool
from bff.upstream.connections import ConnectionPool
from bff.upstream.request import build_request
from services import RunningServices

T = TypeVar("T")


@dataclass
class Seen:
    """One request as it reached the server."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # 1 for the server's first accepted connection, 2 for the next...
    index: int  # 1 for the first request on its connection


@dataclass
class Answer:
    data: bytes = b""
    close: bool = False  # close the connection after writing `data` (or instead of answering)
    pieces: int = 1  # written in this many parts, with a pause between them


def ok(body: bytes = b'{"ok":true}', *extra: str) -> Answer:
    head = "".join(f"{line}\r\n" for line in extra)
    return Answer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%b\r\n%b"
        % (len(body), head.encode(), body)
    )


Respond = Callable[[Seen], Awaitable[Answer]]


@dataclass
class Scripted:
    """A loopback HTTP/1.1 server whose every answer is computed by `respond`."""

    respond: Respond
    seen: list[Seen] = field(default_factory=list)
    accepted: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_client: int = 0
    _server: asyncio.Server | None = None

    url: str = ""
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening, hang up on every client and wait for the handlers to finish."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.accepted += 1
        number = self.accepted
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        index = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                method, target, _ = line.split(" ")
                headers = dict(f.split(": ", 1) for f in fields)
                lowered = {k.lower(): v for k, v in headers.items()}
                body = await reader.readexactly(int(lowered.get("content-length", "0")))
                index += 1
                seen = Seen(method, target, headers, body, number, index)
                self.seen.append(seen)
                answer = await self.respond(seen)
                step = -(-len(answer.data) // answer.pieces)
                for start in range(0, len(answer.data), step or 1):
                    if start:
                        await asyncio.sleep(0.005)
                    writer.write(answer.data[start : start + step])
                    await writer.drain()
                if answer.close:
                    return
        except ConnectionError:
            return
        finally:
            self.open_now -= 1
            self._writers.discard(writer)
            writer.close()


def answering(*answers: Answer) -> Respond:
    """Each request gets the next of `answers`; the last one repeats."""
    queue = list(answers)

    async def respond(seen: Seen) -> Answer:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Runs a scenario to completion on a fresh loop of the parametrized kind."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run_it(scenario: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(scenario)

    return run_it


Run = Callable[[Coroutine[Any, Any, Any]], Any]


def pool_of(server: Scripted, **options: Any) -> UpstreamPool:
    return UpstreamPool("svc", [Instance(server.url)], **options)


# --- keep-alive -----------------------------------------------------------------------------


def test_sequential_requests_reuse_one_connection(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(answering(ok())) as server:
            pool = pool_of(server)
            try:
                for _ in range(10):
                    assert (await pool.request("GET", "/x")).json() == {"ok": True}
            finally:
                await pool.aclose()
        assert server.accepted == 1
        assert [s.index for s in server.seen] == list(range(1, 11))

    run(scenario())


def test_idle_connections_expire(run: Run) -> None:
    """Idle connections are dropped before the server's keep-alive ends, never reused late."""

    async def scenario() -> None:
        async with Scripted(answering(ok())) as server:
            pool = ConnectionPool(server.url, limit=2, connect_timeout=1, keepalive_expiry=0.05)
            loop = asyncio.get_running_loop()
            try:
                for pause in (0, 0, 0.1, 0):
                    await asyncio.sleep(pause)
                    status, _, _ = await pool.send(build_request("GET", "/"), loop.time() + 2)
                    assert status == 200
            finally:
                await pool.aclose()
        assert [s.connection for s in server.seen] == [1, 1, 2, 2]

    run(scenario())


def test_host_header_and_request_line(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(answering(ok())) as server:
            pool = pool_of(server)
            try:
                await pool.request("GET", "/users/1", headers={"X-User-Id": "9"})
            finally:
                await pool.aclose()
        (seen,) = server.seen
        assert (seen.method, seen.target) == ("GET", "/users/1")
        assert seen.headers["Host"] == urlsplit(server.url).netloc
        assert seen.headers["X-User-Id"] == "9"
        assert "Content-Length" not in seen.headers  # a GET has no body to frame

    run(scenario())


def test_json_body_is_sent_as_json_bytes(run: Run) -> None:
    payload = {"name": "Zoë", "n": [1, 2.5, None]}

    async def scenario() -> None:
        async with Scripted(answering(ok())) as server:
            pool = pool_of(server)
            try:
                await pool.request("POST", "/orders", json=payload)
                await pool.request("POST", "/empty")
            finally:
                await pool.aclose()
        posted, empty = server.seen
        assert posted.body == orjson.dumps(payload)
        assert posted.headers["Content-Type"] == "application/json"
        assert posted.headers["Content-Length"] == str(len(posted.body))
        assert (empty.body, empty.headers["Content-Length"]) == (b"", "0")

    run(scenario())


def test_response_headers_are_case_insensitive(run: Run) -> None:
    answer = ok(b"{}", "X-Trace: a", "x-trace: b", "Set-Cookie: s=1", "Set-Cookie: t=2")

    async def scenario() -> Headers:
        async with Scripted(answering(answer)) as server:
            pool = pool_of(server)
            try:
                return (await pool.request("GET", "/")).headers
            finally:
                await pool.aclose()

    headers = run(scenario())
    assert headers["content-type"] == headers["CONTENT-TYPE"] == "application/json"
    assert headers["X-Trace"] == "a, b"
    assert headers.get_list("set-cookie") == ["s=1", "t=2"]
    assert "content-length" in headers and "nope" not in headers
    assert headers.get("nope") is None


# --- the server closes connections ------------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_replaced(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(answering(Answer(ok().data, close=True))) as server:
            pool = pool_of(server)
            try:
                for _ in range(3):
                    await pool.request("GET", "/x")
                    await asyncio.sleep(0.02)  # the close reaches the client
            finally:
                await pool.aclose()
        assert server.accepted == 3

    run(scenario())


def closes_on_second_request(seen: Seen) -> Awaitable[Answer]:
    """Keeps each connection open after one answer, then drops it as the next request comes:
    the server-side keep-alive timeout racing the client's reuse."""

    async def respond() -> Answer:
        return ok() if seen.index == 1 else Answer(close=True)

    return respond()


def test_a_get_on_a_connection_closed_as_it_was_sent_is_retried_once(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(closes_on_second_request) as server:
            pool = pool_of(server)
            try:
                await pool.request("GET", "/first")
                assert (await pool.request("GET", "/again")).status == 200
            finally:
                await pool.aclose()
        assert [(s.target, s.connection) for s in server.seen] == [
            ("/first", 1),
            ("/again", 1),  # dropped unanswered
            ("/again", 2),  # sent again on a fresh connection
        ]

    run(scenario())


def test_a_post_on_a_connection_closed_as_it_was_sent_is_not_retried(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(closes_on_second_request) as server:
            pool = pool_of(server)
            try:
                await pool.request("POST", "/orders", json={})
                with pytest.raises(UpstreamUnavailable):
                    await pool.request("POST", "/orders", json={})
                assert (await pool.request("GET", "/after")).status == 200
            finally:
                await pool.aclose()
        assert [s.target for s in server.seen] == ["/orders", "/orders", "/after"]

    run(scenario())


def test_a_connection_lost_mid_response_is_not_retried(run: Run) -> None:
    cut = Answer(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial', close=True)

    async def scenario() -> None:
        async with Scripted(answering(ok(), cut)) as server:
            pool = pool_of(server)
            try:
                await pool.request("GET", "/warm")
                with pytest.raises(UpstreamUnavailable):
                    await pool.request("GET", "/cut")
            finally:
                await pool.aclose()
        assert [s.target for s in server.seen] == ["/warm", "/cut"]

    run(scenario())


# --- framing ------------------------------------------------------------------------------------


def chunked(*parts: bytes) -> bytes:
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def test_chunked_bodies_are_joined_and_the_connection_kept(run: Run) -> None:
    async def slow_chunks(seen: Seen) -> Answer:
        return Answer(chunked(b'{"a":', b" [1, 2", b", 3]}"), pieces=7)

    async def scenario() -> None:
        async with Scripted(slow_chunks) as server:
            pool = pool_of(server)
            try:
                for _ in range(3):
                    assert (await pool.request("GET", "/c")).json() == {"a": [1, 2, 3]}
            finally:
                await pool.aclose()
        assert server.accepted == 1

    run(scenario())


def test_a_body_split_over_many_packets_is_read_whole(run: Run) -> None:
    body = orjson.dumps({"items": list(range(5000))})

    async def dribble(seen: Seen) -> Answer:
        return Answer(ok(body).data, pieces=10)

    async def scenario() -> bytes:
        async with Scripted(dribble) as server:
            pool = pool_of(server)
            try:
                return (await pool.request("GET", "/")).body
            finally:
                await pool.aclose()

    assert run(scenario()) == body


def test_a_body_without_length_ends_when_the_server_closes(run: Run) -> None:
    unframed = Answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1,2,3]", close=True)

    async def scenario() -> None:
        async with Scripted(answering(unframed)) as server:
            pool = pool_of(server)
            try:
                assert (await pool.request("GET", "/")).json() == [1, 2, 3]
                assert (await pool.request("GET", "/")).json() == [1, 2, 3]
            finally:
                await pool.aclose()
        assert server.accepted == 2

    run(scenario())


def test_an_interim_100_continue_is_skipped(run: Run) -> None:
    interim = Answer(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"[7]").data)

    async def scenario() -> Any:
        async with Scripted(answering(interim)) as server:
            pool = pool_of(server)
            try:
                return (await pool.request("GET", "/")).json()
            finally:
                await pool.aclose()

    assert run(scenario()) == [7]


def test_head_responses_have_no_body(run: Run) -> None:
    async def head_aware(seen: Seen) -> Answer:
        answer = ok(b"x" * 50)
        return Answer(answer.data[:-50]) if seen.method == "HEAD" else answer

    async def scenario() -> None:
        async with Scripted(head_aware) as server:
            pool = pool_of(server)
            try:
                head = await pool.request("HEAD", "/")
                assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "50")
                assert (await pool.request("GET", "/")).body == b"x" * 50
            finally:
                await pool.aclose()

    run(scenario())


def test_a_malformed_response_is_bad_upstream_response(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(answering(Answer(b"SMTP ready\r\n\r\n"))) as server:
            pool = pool_of(server)
            try:
                with pytest.raises(BadUpstreamResponse):
                    await pool.request("GET", "/")
            finally:
                await pool.aclose()

    run(scenario())


def test_large_bodies_and_the_body_limit(run: Run) -> None:
    big = bytes(range(256)) * (8 * 4096)  # 8 MiB

    async def scenario() -> None:
        async with Scripted(answering(ok(big))) as server:
            pool = pool_of(server, total_timeout=30)
            small = pool_of(server, max_body=len(big) - 1)
            try:
                assert (await pool.request("GET", "/")).body == big
                with pytest.raises(BadUpstreamResponse):
                    await small.request("GET", "/")
                assert small.transport.pool_of(small.instances[0]).open_connections == 0
            finally:
                await pool.aclose()
                await small.aclose()

    run(scenario())


# --- time, refusal, limits ---------------------------------------------------------------------


def test_a_timeout_mid_response_discards_the_connection(run: Run) -> None:
    async def stall_first(seen: Seen) -> Answer:
        if seen.connection == 1:
            await asyncio.sleep(1)  # long past the budget, then a valid answer
        return ok()

    async def scenario() -> None:
        async with Scripted(stall_first) as server:
            pool = pool_of(server, total_timeout=0.2)
            try:
                with pytest.raises(UpstreamTimeout):
                    await pool.request("GET", "/slow")
                assert (await pool.request("GET", "/next")).status == 200
            finally:
                await pool.aclose()
        assert [(s.target, s.connection) for s in server.seen] == [("/slow", 1), ("/next", 2)]

    run(scenario())


def test_a_stall_after_part_of_the_body_is_a_timeout(run: Run) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789"

    async def half_then_stall(seen: Seen) -> Answer:
        return Answer(head) if seen.connection == 1 else ok()

    async def scenario() -> None:
        async with Scripted(half_then_stall) as server:
            pool = pool_of(server, total_timeout=0.2)
            try:
                with pytest.raises(UpstreamTimeout):
                    await pool.request("GET", "/half")
                assert (await pool.request("GET", "/next")).status == 200
            finally:
                await pool.aclose()
        assert [(s.target, s.connection) for s in server.seen] == [("/half", 1), ("/next", 2)]

    run(scenario())


def test_a_cancelled_call_discards_its_connection(run: Run) -> None:
    async def slow(seen: Seen) -> Answer:
        await asyncio.sleep(0.2 if seen.connection == 1 else 0)
        return ok()

    async def scenario() -> None:
        async with Scripted(slow) as server:
            pool = pool_of(server)
            try:
                call = asyncio.ensure_future(pool.request("GET", "/slow"))
                await asyncio.sleep(0.05)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                assert (await pool.request("GET", "/next")).status == 200
            finally:
                await pool.aclose()
        assert [s.connection for s in server.seen] == [1, 2]

    run(scenario())


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_refused_connection_is_upstream_unavailable(run: Run) -> None:
    async def scenario() -> None:
        pool = UpstreamPool("svc", [Instance(closed_port_url())], max_connections=1)
        try:
            for _ in range(3):  # a failed connect gives its slot back
                with pytest.raises(UpstreamUnavailable) as caught:
                    await pool.request("GET", "/")
                assert caught.value.upstream == "svc"
        finally:
            await pool.aclose()

    run(scenario())


def test_a_connect_that_hangs_is_a_timeout_within_the_connect_timeout(run: Run) -> None:
    """A listener whose accept queue is full: the kernel drops our SYN, the connect hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))

            async def scenario() -> float:
                pool = UpstreamPool(
                    "svc",
                    [Instance(f"http://127.0.0.1:{port}")],
                    connect_timeout=0.1,
                    total_timeout=5,
                    max_connections=1,
                )
                loop = asyncio.get_running_loop()
                started = loop.time()
                try:
                    for _ in range(2):  # the timed-out connect gave its slot back
                        with pytest.raises(UpstreamTimeout):
                            await pool.request("GET", "/")
                finally:
                    await pool.aclose()
                return loop.time() - started

            assert run(scenario()) < 1.0  # two connect timeouts, not the total budget
        finally:
            for filler in fillers:
                filler.close()


def test_requests_over_the_limit_queue_and_never_exceed_it(run: Run) -> None:
    async def slow(seen: Seen) -> Answer:
        await asyncio.sleep(0.02)
        return ok(orjson.dumps(seen.target))

    async def scenario() -> None:
        async with Scripted(slow) as server:
            pool = pool_of(server, max_connections=3)
            try:
                targets = [f"/n/{i}" for i in range(20)]
                responses = await asyncio.gather(*(pool.request("GET", t) for t in targets))
            finally:
                await pool.aclose()
        assert [r.json() for r in responses] == targets  # none failed, none mixed up
        assert server.accepted == server.most_open == 3

    run(scenario())


def test_waiting_for_a_connection_counts_against_the_total_timeout(run: Run) -> None:
    async def slow(seen: Seen) -> Answer:
        await asyncio.sleep(0.3 if seen.target == "/slow" else 0)
        return ok()

    async def scenario() -> None:
        async with Scripted(slow) as server:
            pool = pool_of(server, max_connections=1, total_timeout=2)
            try:
                first = asyncio.ensure_future(pool.request("GET", "/slow"))
                await asyncio.sleep(0.05)
                pool.total_timeout = 0.1  # read per call: the first call keeps its 2 s
                with pytest.raises(UpstreamTimeout):
                    await pool.request("GET", "/queued")  # the only connection is busy
                assert (await first).status == 200
                assert (await pool.request("GET", "/after")).status == 200
            finally:
                await pool.aclose()
        assert [s.target for s in server.seen] == ["/slow", "/after"]
        assert server.accepted == 1

    run(scenario())


# --- encoding ------------------------------------------------------------------------------------


def test_params_and_paths_are_percent_encoded(run: Run) -> None:
    params = {"q": "a b&c=d+e#f", "ids": "1,2,3", "name": "Zoë/ü", "n": 7}

    async def scenario() -> Seen:
        async with Scripted(answering(ok())) as server:
            pool = pool_of(server)
            try:
                await pool.request("GET", "/items/a b?/ü", params=params)
            finally:
                await pool.aclose()
        return server.seen[0]

    seen = run(scenario())
    path, _, query = seen.target.partition("?")
    assert path == "/items/a%20b%3F/%C3%BC"
    assert unquote(path) == "/items/a b?/ü"
    assert dict(parse_qsl(query)) == {k: str(v) for k, v in params.items()}
    assert "ids=1,2,3" in query  # commas are legal in a query and stay readable


def test_header_values_that_could_split_the_request_are_refused() -> None:
    with pytest.raises(ValueError):
        build_request("GET", "/", headers={"X-User-Id": "1\r\nX-Admin: yes"})
    with pytest.raises(ValueError):
        build_request("GET", "/", headers={"X-A": "1\nGET / HTTP/1.1"})


def test_framing_headers_of_the_caller_are_ignored() -> None:
    request = build_request("GET", "/", headers={"Content-Length": "5", "Host": "evil", "A": "b"})
    assert request.fields == b"A: b\r\n"


# --- loops -------------------------------------------------------------------------------------


def test_a_pool_built_outside_a_loop_serves_successive_loops() -> None:
    """The gateway builds pools before uvicorn's loop runs; tests may run several loops."""
    server_loop = asyncio.new_event_loop()
    server = Scripted(answering(ok()))
    server_loop.run_until_complete(server.__aenter__())
    thread = threading.Thread(target=server_loop.run_forever, daemon=True)
    thread.start()
    pool = pool_of(server)  # no loop runs in this thread yet

    async def one_call() -> int:
        try:
            return (await pool.request("GET", "/")).status
        finally:
            await pool.aclose()

    try:
        for factory in (None, uvloop.new_event_loop, None):
            with asyncio.Runner(loop_factory=factory) as runner:
                assert runner.run(one_call()) == 200
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(), server_loop).result(5)
        server_loop.call_soon_threadsafe(server_loop.stop)
        thread.join(5)
        server_loop.close()
    assert server.accepted == 3  # one connection per loop: none crossed loops


def test_aclose_closes_every_connection(run: Run) -> None:
    async def scenario() -> None:
        async with Scripted(answering(ok())) as server:
            pool = pool_of(server, max_connections=4)
            await asyncio.gather(*(pool.request("GET", f"/{n}") for n in range(4)))  # not shared
            assert server.accepted == 4
            await pool.aclose()
            for _ in range(50):
                if server.open_now == 0:
                    break
                await asyncio.sleep(0.01)
            assert server.open_now == 0
            assert server.closed_by_client == server.accepted

    run(scenario())


def test_aclose_fails_calls_in_flight_and_refuses_new_ones(run: Run) -> None:
    async def slow(seen: Seen) -> Answer:
        await asyncio.sleep(0.5)
        return ok()

    async def scenario() -> None:
        async with Scripted(slow) as server:
            pool = pool_of(server, max_connections=1)
            busy = asyncio.ensure_future(pool.request("GET", "/busy"))
            queued = asyncio.ensure_future(pool.request("GET", "/queued"))
            await asyncio.sleep(0.05)
            await pool.aclose()
            for call in (busy, queued):
                with pytest.raises(UpstreamUnavailable):
                    await call
            with pytest.raises(UpstreamUnavailable):
                await pool.request("GET", "/later")
            assert pool.transport.pool_of(pool.instances[0]).open_connections == 0
        assert [s.target for s in server.seen] == ["/busy"]  # the GET was not sent again

    run(scenario())


def test_request_gains_a_header_per_attempt() -> None:
    from bff.upstream.request import build_request

    request = build_request("GET", "/x", headers={"A": "1"})
    traced = request.with_header("traceparent", "00-abc-def-01")
    assert traced.fields == request.fields + b"traceparent: 00-abc-def-01\r\n"
    assert request.fields == b"A: 1\r\n"
    for name, value in [("x", "a\r\nB: 2"), ("x\n", "1"), ("a:b", "1"), ("x", "\0")]:
        with pytest.raises(ValueError):
            request.with_header(name, value)


def test_sample_services_echo_the_request_id(shop: RunningServices) -> None:
    """The services echo `X-Request-Id`, so the client can tell its answer from another's."""

    async def scenario() -> None:
        pool = UpstreamPool("catalog", [Instance(shop.url("catalog"))])
        try:
            sent = {"X-Request-Id": "req-42"}
            reply = await pool.request("GET", "/products", params={"ids": "1"}, headers=sent)
            assert (reply.status, reply.headers["x-request-id"]) == (200, "req-42")
            assert "x-request-id" not in (await pool.request("GET", "/health")).headers
        finally:
            await pool.aclose()

    asyncio.run(scenario())


def test_headers_get_is_case_insensitive_with_a_default() -> None:
    headers = Headers([(b"Cache-Control", b"max-age=5"), (b"Vary", b"a"), (b"vary", b"b")])
    assert headers.get("cache-control") == "max-age=5"
    assert headers.get("VARY") == "a, b"  # repeated fields joined, as [] reads them
    assert headers.get("etag") is None
    assert headers.get("etag", "none") == "none"
    assert headers.get("vary") == headers["Vary"]
