"""Shared upstream calls: identical idempotent calls in flight at once are sent once.

The pool tests run a loopback HTTP/1.1 server that holds every answer until the test opens
its gate, so the overlap of the calls is certain, and it counts what reached the wire. The
last test runs the whole gateway over the sample services.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bff.errors import UpstreamUnavailable
from bff.upstream import Instance, UpstreamPool
from bff.upstream.header_policy import used_answers
from bff.upstream.sharing import InFlight
from services import ServiceOptions, ServiceSpec
from tests.support import (
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    running_shop,
)

WAIT = 5.0  # bound on every wait: a broken share must fail the test, not hang it


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A sync test running the coroutine `test` on a loop of its own."""

    @functools.wraps(test)
    def sync() -> None:
        asyncio.run(test())

    return sync


@dataclass
class Held:
    """A server that answers each request (200, or 503 with `fail`) once `gate` opens."""

    fail: bool = False
    cookie: bool = False  # every answer sets one
    requests: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(v)
                        for n, _, v in (x.partition(": ") for x in lines)
                        if n == "Content-Length"
                    ),
                    0,
                )
                body = await reader.readexactly(length) if length else b""
                self.requests.append(f"{lines[0]} {body.decode()}".strip())
                self.arrived.set()
                await self.gate.wait()
                status, payload = (
                    ("503 Unavailable", b"{}") if self.fail else ("200 OK", b'{"n":1}')
                )
                cookie = b"Set-Cookie: s=1\r\n" if self.cookie else b""
                writer.write(
                    b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    b"%s\r\n%s" % (status.encode(), len(payload), cookie, payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def held_pool(
    fail: bool = False, cookie: bool = False, **options: object
) -> AsyncIterator[tuple[Held, UpstreamPool, list[str]]]:
    held = Held(fail=fail, cookie=cookie)
    server = await asyncio.start_server(held.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    shared: list[str] = []
    pool = UpstreamPool(
        "catalog",
        [Instance(f"http://127.0.0.1:{port}")],
        on_shared=shared.append,
        **options,  # type: ignore[arg-type]
    )
    try:
        yield held, pool, shared
    finally:
        await pool.aclose()
        server.close()


async def opened_after_arrival(held: Held) -> None:
    """Let every started call reach the pool, then answer."""
    await asyncio.wait_for(held.arrived.wait(), WAIT)
    for _ in range(5):
        await asyncio.sleep(0)
    held.gate.set()


@run
async def test_identical_gets_in_flight_are_sent_once() -> None:
    async with held_pool() as (held, pool, shared):
        calls = [
            pool.request("GET", "/products", params={"ids": "1,2"}, headers={"X-User-Id": "7"})
            for _ in range(10)
        ]
        gathered = asyncio.gather(*calls)
        await opened_after_arrival(held)
        answers = await asyncio.wait_for(gathered, WAIT)
    assert held.requests == ["GET /products?ids=1,2 HTTP/1.1"]
    assert [a.json() for a in answers] == [{"n": 1}] * 10
    assert shared == ["catalog"] * 9
    assert len(pool.in_flight) == 0  # forgotten once answered


@run
async def test_a_finished_call_is_not_shared_with_a_later_one() -> None:
    async with held_pool() as (held, pool, _):
        held.gate.set()
        await pool.request("GET", "/products")
        await pool.request("GET", "/products")
    assert len(held.requests) == 2


@run
async def test_other_identity_query_or_method_is_its_own_call() -> None:
    async with held_pool() as (held, pool, shared):
        gathered = asyncio.gather(
            pool.request("GET", "/products", headers={"X-User-Id": "1"}),
            pool.request("GET", "/products", headers={"X-User-Id": "2"}),
            pool.request("GET", "/products", params={"ids": "1"}, headers={"X-User-Id": "1"}),
            pool.request("HEAD", "/products", headers={"X-User-Id": "1"}),
        )
        await opened_after_arrival(held)
        await asyncio.wait_for(gathered, WAIT)
    assert len(held.requests) == 4
    assert shared == []


@run
async def test_calls_with_a_body_or_with_dedupe_off_are_never_shared() -> None:
    async with held_pool() as (held, pool, shared):
        gathered = asyncio.gather(
            *(pool.request("POST", "/orders", json={"a": 1}) for _ in range(3))
        )
        await opened_after_arrival(held)
        await asyncio.wait_for(gathered, WAIT)
    assert held.requests == ['POST /orders HTTP/1.1 {"a":1}'] * 3
    async with held_pool(dedupe=False) as (held, pool, shared):
        gathered = asyncio.gather(*(pool.request("GET", "/products") for _ in range(3)))
        await opened_after_arrival(held)
        await asyncio.wait_for(gathered, WAIT)
    assert len(held.requests) == 3
    assert shared == []


@run
async def test_a_cancelled_waiter_leaves_the_call_to_the_others() -> None:
    async with held_pool() as (held, pool, _):
        first = asyncio.ensure_future(pool.request("GET", "/products"))
        others = [asyncio.ensure_future(pool.request("GET", "/products")) for _ in range(3)]
        await asyncio.wait_for(held.arrived.wait(), WAIT)
        first.cancel()  # the one that started the call hangs up
        with pytest.raises(asyncio.CancelledError):
            await first
        held.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*others), WAIT)
    assert [a.status for a in answers] == [200] * 3
    assert len(held.requests) == 1


@run
async def test_the_call_is_cancelled_once_nobody_waits_for_it() -> None:
    async with held_pool() as (held, pool, _):
        waiters = [asyncio.ensure_future(pool.request("GET", "/products")) for _ in range(2)]
        await asyncio.wait_for(held.arrived.wait(), WAIT)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await asyncio.sleep(0)
        assert len(pool.in_flight) == 0


@run
async def test_a_failure_is_every_sharers_failure_retried_once_for_all() -> None:
    async with held_pool(fail=True, attempts=2) as (held, pool, shared):
        gathered = asyncio.gather(
            *(pool.request("GET", "/products") for _ in range(5)), return_exceptions=True
        )
        await opened_after_arrival(held)
        answers = await asyncio.wait_for(gathered, WAIT)
    # 503 is retried: one call and its one retry, for all five callers
    assert len(held.requests) == 2
    assert [a.status for a in answers if not isinstance(a, BaseException)] == [503] * 5
    assert shared == ["catalog"] * 4


@run
async def test_a_transport_failure_is_raised_to_every_sharer() -> None:
    async with held_pool(attempts=1) as (held, pool, _):
        gathered = asyncio.gather(
            *(pool.request("GET", "/products") for _ in range(4)), return_exceptions=True
        )
        await asyncio.wait_for(held.arrived.wait(), WAIT)
        for _ in range(5):
            await asyncio.sleep(0)
        await pool.transport.aclose()  # the connection under the call goes away
        answers = await asyncio.wait_for(gathered, WAIT)
    assert all(isinstance(a, UpstreamUnavailable) for a in answers), answers
    assert len(held.requests) == 1


@run
async def test_a_mutations_calls_are_never_shared() -> None:
    async def as_mutation(pool: UpstreamPool) -> int:
        with used_answers(mutation=True):
            return (await pool.request("GET", "/products")).status

    async with held_pool() as (held, pool, shared):
        gathered = asyncio.gather(*(as_mutation(pool) for _ in range(3)))
        await opened_after_arrival(held)
        assert await asyncio.wait_for(gathered, WAIT) == [200] * 3
    assert len(held.requests) == 3
    assert shared == []


@run
async def test_a_cookie_of_a_shared_call_reaches_only_the_caller_who_started_it() -> None:
    async def passed_cookies(pool: UpstreamPool) -> list[tuple[str, str]]:
        with used_answers() as used:
            await pool.request("GET", "/products")
        return used.fields

    async with held_pool(cookie=True, response_headers=["Set-Cookie"]) as (held, pool, _):
        gathered = asyncio.gather(*(passed_cookies(pool) for _ in range(3)))
        await opened_after_arrival(held)
        fields = await asyncio.wait_for(gathered, WAIT)
    assert fields == [[("set-cookie", "s=1")], [], []]
    assert len(held.requests) == 1


@run
async def test_in_flight_shares_one_result_and_forgets_it() -> None:
    in_flight: InFlight[int] = InFlight()
    started = 0

    async def call() -> int:
        nonlocal started
        started += 1
        await asyncio.sleep(0.01)
        return 42

    shared = await asyncio.gather(*(in_flight.share("k", call) for _ in range(4)))
    assert shared == [(42, False), (42, True), (42, True), (42, True)]
    assert started == 1
    assert await in_flight.share("k", call) == (42, False)
    assert started == 2


def test_concurrent_identical_graphql_requests_share_their_upstream_calls() -> None:
    slow = ServiceSpec("catalog", options=ServiceOptions(latency=0.3))
    with running_shop(slow) as shop:
        settings = gateway_settings(shop.urls)
        with running_gateway(settings) as url:
            calls = UpstreamCalls(shop)
            calls.reset()
            query = "{ product(id: 3) { id name } }"
            clients = [GraphQLClient(url) for _ in range(8)]
            results: list[object] = []

            def ask(client: GraphQLClient) -> None:
                results.append(client.data(query))

            threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT * 2)
            assert len(results) == 8
            assert all(r == results[0] for r in results)
            catalog = calls.by_service()["catalog"]
            metrics = httpx.get(f"{url}/metrics", timeout=WAIT).text
            for client in clients:
                client.close()
            calls.close()
    # eight overlapping requests inside a 0.3 s upstream call: far fewer than eight calls
    assert catalog <= 2, catalog
    shared = [
        line
        for line in metrics.splitlines()
        if line.startswith('bff_upstream_shared_total{upstream="catalog"}')
    ]
    assert shared and float(shared[0].split()[-1]) == 8 - catalog
