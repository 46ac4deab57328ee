"""Upstream pools: the round-robin decision (pure), and the pool over real loopback servers.

The balancer is tested without I/O. The pool and the gateway are tested against real
services: the counts each instance reports prove where requests went; client ports seen by a
recording server prove connection reuse and the connection limit.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bff.app import create_app
from bff.errors import UpstreamTimeout, UpstreamUnavailable
from bff.serving import BackgroundServer
from bff.upstream import Instance, RoundRobin, UpstreamPool, make_balancer
from bff.upstream.balancer import NoInstanceAvailable
from services import RunningServices, ServiceOptions, ServiceSpec, shop_data
from tests.support import GraphQLClient, UpstreamCalls, gateway_settings, running_gateway

DATA = shop_data(42)
LATENCY = 0.2
USER = "query($id: ID!) { user(id: $id) { id name } }"


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def instances(*zones: str | None) -> list[Instance]:
    return [Instance(f"http://10.0.0.{n}:80", zone=zone) for n, zone in enumerate(zones, 1)]


def picks(balancer: RoundRobin, n: int) -> list[str]:
    return [balancer.choose().url for _ in range(n)]


# --- RoundRobin, pure -------------------------------------------------------------------------


def test_round_robin_takes_each_instance_in_turn() -> None:
    a, b, c = instances(None, None, None)
    assert picks(RoundRobin([a, b, c]), 7) == [a.url, b.url, c.url, a.url, b.url, c.url, a.url]


def test_round_robin_spreads_evenly() -> None:
    pool = instances(None, None, None, None)
    balancer = RoundRobin(pool)
    chosen = picks(balancer, 400)
    assert {url: chosen.count(url) for url in set(chosen)} == {i.url: 100 for i in pool}


def test_a_single_instance_is_always_chosen() -> None:
    (a,) = instances(None)
    assert picks(RoundRobin([a]), 3) == [a.url] * 3


def test_unhealthy_instances_are_skipped() -> None:
    a, b, c = instances(None, None, None)
    b.healthy = False
    balancer = RoundRobin([a, b, c])
    assert b.url not in picks(balancer, 6)
    assert sorted(set(picks(balancer, 6))) == sorted([a.url, c.url])


def test_an_instance_back_to_health_is_chosen_again() -> None:
    a, b = instances(None, None)
    b.healthy = False
    balancer = RoundRobin([a, b])
    assert picks(balancer, 3) == [a.url] * 3
    b.healthy = True
    balancer.invalidate()  # what the health checker calls on every change
    assert set(picks(balancer, 2)) == {a.url, b.url}


def test_the_own_zone_is_preferred() -> None:
    a, b, c, d = instances("dc1", "dc2", "dc1", "dc2")
    balancer = RoundRobin([a, b, c, d], zone="dc1")
    chosen = picks(balancer, 6)
    assert set(chosen) == {a.url, c.url}
    assert chosen.count(a.url) == chosen.count(c.url) == 3


def test_zone_failover_when_no_instance_is_healthy_there() -> None:
    a, b, c, d = instances("dc1", "dc2", "dc1", "dc2")
    a.healthy = c.healthy = False
    balancer = RoundRobin([a, b, c, d], zone="dc1")
    assert set(picks(balancer, 4)) == {b.url, d.url}
    c.healthy = True
    balancer.invalidate()
    assert picks(balancer, 3) == [c.url] * 3


def test_a_zone_with_no_instances_uses_every_zone() -> None:
    a, b = instances("dc2", None)
    assert set(picks(RoundRobin([a, b], zone="dc9"), 4)) == {a.url, b.url}


def test_no_zone_uses_every_zone() -> None:
    a, b, c = instances("dc1", "dc2", None)
    assert set(picks(RoundRobin([a, b, c]), 3)) == {a.url, b.url, c.url}


def test_no_instance_at_all_is_no_instance_available() -> None:
    with pytest.raises(NoInstanceAvailable):
        RoundRobin([]).choose()


def test_panic_mode_uses_every_instance_when_none_is_usable() -> None:
    a, b = instances(None, None)
    a.healthy = b.healthy = False
    balancer = RoundRobin([a, b])
    assert set(picks(balancer, 4)) == {a.url, b.url}
    assert balancer.panic is True
    assert balancer.usable_count() == 0
    b.healthy = True
    balancer.invalidate()
    assert picks(balancer, 3) == [b.url] * 3
    assert balancer.panic is False


def test_make_balancer_builds_round_robin() -> None:
    a, b = instances("dc1", "dc2")
    balancer = make_balancer("round_robin", [a, b], zone="dc2")
    assert isinstance(balancer, RoundRobin)
    assert picks(balancer, 2) == [b.url, b.url]


# --- UpstreamPool over real servers ------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_users() -> Iterator[RunningServices]:
    """The users service, answering every metered request after LATENCY seconds."""
    with RunningServices([ServiceSpec("users", ServiceOptions(latency=LATENCY))]) as running:
        yield running


def test_pool_request_to_a_real_service(shop: RunningServices) -> None:
    async def scenario() -> tuple[int, object, int]:
        pool = UpstreamPool("catalog", [Instance(shop.url("catalog"))])
        try:
            found = await pool.request("GET", "/products/1")
            missing = await pool.request("GET", "/products/999999")
        finally:
            await pool.aclose()
        return found.status, found.json(), missing.status

    status, body, missing = asyncio.run(scenario())
    assert status == 200
    assert body == DATA.products[1]
    assert missing == 404  # statuses pass up untouched; typed clients give them meaning


def test_pool_request_sends_params_and_headers(shop: RunningServices, calls: UpstreamCalls) -> None:
    async def scenario() -> object:
        pool = UpstreamPool("users", [Instance(u) for u in shop.urls["users"]])
        try:
            response = await pool.request(
                "GET", "/users", params={"ids": "3,1"}, headers={"X-User-Id": "9"}
            )
        finally:
            await pool.aclose()
        return response.json()

    body = asyncio.run(scenario())
    assert isinstance(body, dict)
    assert sorted(u["id"] for u in body["items"]) == [1, 3]
    assert calls.last_headers("users")["x-user-id"] == "9"


def test_pool_request_to_a_closed_port_is_upstream_unavailable() -> None:
    async def scenario() -> None:
        pool = UpstreamPool("users", [Instance(closed_port_url())])
        try:
            await pool.request("GET", "/users/1")
        finally:
            await pool.aclose()

    with pytest.raises(UpstreamUnavailable) as caught:
        asyncio.run(scenario())
    assert caught.value.code == "UPSTREAM_UNAVAILABLE"
    assert caught.value.upstream == "users"


def test_pool_request_to_a_slow_service_is_upstream_timeout(
    slow_users: RunningServices,
) -> None:
    async def scenario() -> None:
        pool = UpstreamPool(
            "users",
            [Instance(slow_users.url("users"))],
            connect_timeout=0.05,
            total_timeout=LATENCY / 4,
        )
        try:
            await pool.request("GET", "/users/1")
        finally:
            await pool.aclose()

    with pytest.raises(UpstreamTimeout) as caught:
        asyncio.run(scenario())
    assert caught.value.code == "UPSTREAM_TIMEOUT"
    assert caught.value.upstream == "users"


def test_pool_in_panic_mode_still_sends_to_its_instance(shop: RunningServices) -> None:
    """Every instance marked unusable: the pool sends anyway rather than failing at once."""

    async def scenario() -> int:
        instance = Instance(shop.url("catalog"))
        instance.healthy = False
        pool = UpstreamPool("catalog", [instance])
        try:
            return (await pool.request("GET", "/products/1")).status
        finally:
            await pool.aclose()

    assert asyncio.run(scenario()) == 200


# --- connections: keep-alive and the connection limit ------------------------------------------


async def client_port(request: Request) -> JSONResponse:
    """Answers after a short pause with the client's port: one port per TCP connection."""
    await asyncio.sleep(float(request.query_params.get("pause", "0")))
    assert request.client is not None
    return JSONResponse({"port": request.client.port})


@pytest.fixture(scope="module")
def recorder() -> Iterator[str]:
    app = Starlette(routes=[Route("/port", client_port)])
    with BackgroundServer(app) as server:
        yield server.url


def ports_seen(url: str, max_connections: int, *, sequential: int, concurrent: int) -> set[int]:
    """Client ports a recorder saw from one pool: `sequential` calls, then `concurrent` ones."""

    async def scenario() -> set[int]:
        pool = UpstreamPool("recorder", [Instance(url)], max_connections=max_connections)
        try:
            responses = [await pool.request("GET", "/port") for _ in range(sequential)]
            responses += await asyncio.gather(
                # distinct queries: identical calls in flight would be shared (dedupe)
                *(
                    pool.request("GET", "/port", params={"pause": "0.05", "n": n})
                    for n in range(concurrent)
                )
            )
        finally:
            await pool.aclose()
        assert all(r.status == 200 for r in responses)
        return {r.json()["port"] for r in responses}

    return asyncio.run(scenario())


def test_sequential_requests_reuse_one_connection(recorder: str) -> None:
    assert len(ports_seen(recorder, 10, sequential=20, concurrent=0)) == 1


def test_concurrent_requests_open_several_connections(recorder: str) -> None:
    """The control for the limit below: without it, overlapping calls need more connections."""
    assert len(ports_seen(recorder, 10, sequential=0, concurrent=4)) > 1


def test_max_connections_bounds_the_connections_opened(recorder: str) -> None:
    assert len(ports_seen(recorder, 1, sequential=3, concurrent=6)) == 1


# --- round robin through the gateway -----------------------------------------------------------


def test_gateway_spreads_lookups_evenly_over_instances(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    for user_id in range(11, 21):
        user = gql.data(USER, {"id": str(user_id)})["user"]
        assert user == {"id": str(user_id), "name": DATA.users[user_id]["name"]}
    assert calls.per_instance("users") == [5, 5]


def test_a_dead_instance_fails_its_share_without_retries_until_checked_out(
    shop: RunningServices, calls: UpstreamCalls
) -> None:
    """No retry (attempts 1), and a dead instance marked healthy by hand after start-up:
    each of its turns fails, partially and named, until outlier detection ejects it."""
    live = shop.urls["users"][0]
    urls = {**shop.urls, "users": [live, closed_port_url()]}
    settings = gateway_settings(
        urls,
        {
            "retries": {"attempts": 1},
            "outlier": {"consecutive_failures": 3},
            "health_check": {"interval": "1h"},  # only the start-up probe
        },
    )
    app = create_app(settings)
    with BackgroundServer(app) as server:
        pool = app.state.upstreams["users"]
        pool.instances[1].healthy = True  # the start-up check found it dead: pretend it did not
        pool.balancer.invalidate()
        client = GraphQLClient(server.url)
        try:
            bodies = [client.execute(USER, {"id": str(uid)}) for uid in range(31, 43)]
        finally:
            client.close()
    answered = [b for b in bodies if "errors" not in b]
    failed = [b for b in bodies if "errors" in b]
    assert len(failed) == 3  # then ejected: the live instance answers everything else
    assert len(answered) == 9
    for body in answered:
        assert body["data"]["user"]["name"]
    for body in failed:
        assert body["data"] == {"user": None}
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert error["extensions"]["upstream"] == "users"
        assert error["path"] == ["user"]
    assert calls.per_instance("users")[0] == 9


def test_concurrent_requests_through_one_connection_all_succeed(
    shop: RunningServices, slow_users: RunningServices
) -> None:
    """`max_connections: 1` queues calls to a slow upstream; it never fails or mixes them up."""
    urls = {**shop.urls, "users": slow_users.urls["users"]}
    settings = gateway_settings(urls, {"max_connections": 1, "timeout": {"total": "5s"}})
    ids = [41, 42, 43]
    with running_gateway(settings) as url:

        def lookup(user_id: int) -> httpx.Response:
            with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
                return http.post("/graphql", json={"query": USER, "variables": {"id": user_id}})

        with ThreadPoolExecutor(max_workers=len(ids)) as workers:
            responses = list(workers.map(lookup, ids))
    for user_id, response in zip(ids, responses, strict=True):
        assert response.status_code == 200
        assert response.json() == {
            "data": {"user": {"id": str(user_id), "name": DATA.users[user_id]["name"]}},
            "extensions": {"cost": 3},
        }
