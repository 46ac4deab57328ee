"""Pools that survive failures, over real sample services on loopback.

Instances are made slow, failing, or killed (their process's sockets closed) while traffic
flows; what each instance counted, what clients got back, `/readyz` and `/admin/upstreams`
show what the gateway did. Waits are event-based (poll until a state shows, with a generous
deadline), never timed assertions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from bff.app import create_app
from bff.config import settings_from_dict
from bff.errors import UpstreamUnavailable
from bff.serving import BackgroundServer
from bff.upstream import Instance, UpstreamPool
from services import RunningServices, ServiceOptions, ServiceSpec, shop_data
from tests.killable import KillableInstances
from tests.support import AUDIENCE, ISSUER, SECRET, GraphQLClient, sign

DATA = shop_data(42)
USER = "query($id: ID!) { user(id: $id) { id name } }"
FAST_CHECKS = {"interval": "50ms", "timeout": "200ms", "unhealthy_threshold": 2}
WAIT = 15.0  # seconds any awaited state change may take on a loaded machine


def settings(
    shop: RunningServices,
    users: Sequence[Mapping[str, Any]],
    server: Mapping[str, Any] | None = None,
    **users_keys: Any,
) -> Any:
    upstreams: dict[str, Any] = {
        name: {"instances": [{"url": u} for u in urls]} for name, urls in shop.urls.items()
    }
    # dedupe off: these tests count each lookup at the instance it was balanced to
    upstreams["users"] = {"instances": list(users), "dedupe": False, **users_keys}
    return settings_from_dict(
        {
            "server": dict(server or {}),
            "upstreams": upstreams,
            "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwt": {"secret": SECRET}},
        }
    )


@contextmanager
def gateway(config: Any) -> Iterator[tuple[str, Any]]:
    """A served gateway and its `Upstreams` (to read state a test waits for)."""
    app = create_app(config)
    with BackgroundServer(app) as server:
        yield server.url, app.state.upstreams


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.02)


def admin(url: str) -> dict[str, Any]:
    token = sign(scopes=("admin",))
    response = httpx.get(
        f"{url}/admin/upstreams",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def users_state(url: str) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = admin(url)["users"]["instances"]
    return instances


def counts(urls: Sequence[str]) -> list[int]:
    with httpx.Client(timeout=5, trust_env=False) as http:
        return [http.get(f"{u}/_stats").json()["requests"] for u in urls]


def lookups_seen(urls: Sequence[str]) -> list[int]:
    """User lookups (`GET /users...`) each instance answered."""
    with httpx.Client(timeout=5, trust_env=False) as http:
        return [
            sum(
                n
                for path, n in http.get(f"{u}/_stats").json()["by_path"].items()
                if path.startswith("GET /users")
            )
            for u in urls
        ]


def lookups(url: str, n: int, first_id: int = 1) -> list[dict[str, Any]]:
    client = GraphQLClient(url)
    try:
        return [client.execute(USER, {"id": str(first_id + k % 50)}) for k in range(n)]
    finally:
        client.close()


def errors_of(bodies: Sequence[dict[str, Any]]) -> list[Any]:
    return [b["errors"] for b in bodies if "errors" in b]


# --- balancers through the gateway ------------------------------------------------------------


@pytest.fixture
def users2() -> Iterator[KillableInstances]:
    with KillableInstances("users", 2) as group:
        yield group


@pytest.fixture
def users3() -> Iterator[KillableInstances]:
    with KillableInstances("users", 3) as group:
        yield group


def concurrent_lookups(url: str, threads: int, each: int) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda k: lookups(url, each, 1 + k * 7), range(threads))
        return [body for part in parts for body in part]


def test_weighted_one_to_three_split(shop: RunningServices, users2: KillableInstances) -> None:
    """Tolerance: the weight-3 instance's share within 0.75 +- 0.02 under concurrent load
    (smooth weighted round robin is exact over each cycle of 4 choices)."""
    light, heavy = users2.urls
    config = settings(
        shop, [{"url": light, "weight": 1}, {"url": heavy, "weight": 3}], balancer="weighted"
    )
    with gateway(config) as (url, _):
        bodies = concurrent_lookups(url, 4, 50)
    assert errors_of(bodies) == []
    a, b = counts([light, heavy])
    assert a + b == 200
    assert abs(b / 200 - 0.75) <= 0.02, (a, b)


def test_least_requests_sends_less_to_a_slow_instance(shop: RunningServices) -> None:
    """Round robin would give the slow one of three a third; two random choices on requests
    in flight give it about the ninth when both draws are it, and little else."""
    with (
        KillableInstances("users", 1, ServiceOptions(latency=0.2)) as slow,
        KillableInstances("users", 2) as fast,
    ):
        urls = slow.urls + fast.urls
        config = settings(shop, [{"url": u} for u in urls], balancer="least_requests")
        with gateway(config) as (url, _):
            bodies = concurrent_lookups(url, 6, 15)
        assert errors_of(bodies) == []
        per_instance = counts(urls)
    assert sum(per_instance) == 90
    assert per_instance[0] / 90 < 0.25, per_instance


def test_peak_ewma_sends_a_slow_instance_almost_nothing_once_it_has_answered(
    shop: RunningServices,
) -> None:
    """The slow instance may draw a few calls before its first answer shows what it is worth
    (the in-flight factor bounds them); after that its latency keeps it out of every
    comparison with a quick one, for far longer than this test lasts (about 45 s)."""
    with (
        KillableInstances("users", 1, ServiceOptions(latency=0.2)) as slow,
        KillableInstances("users", 2) as fast,
    ):
        urls = slow.urls + fast.urls
        config = settings(shop, [{"url": u} for u in urls], balancer="peak_ewma")
        with gateway(config) as (url, _):
            first = concurrent_lookups(url, 6, 15)
            before = counts(urls)
            second = concurrent_lookups(url, 6, 15)
            estimates = [i["peak_latency_ms"] for i in users_state(url)]
        assert errors_of(first) == [] and errors_of(second) == []
        # what /admin/upstreams shows operators: the 200 ms, decayed by seconds at most
        assert estimates[0] > 20, estimates
        after = counts(urls)
    assert sum(before) == 90 and sum(after) == 180
    assert before[0] / 90 < 0.15, before  # round robin: a third; least_requests: about a ninth
    assert after[0] - before[0] <= 2, (before, after)


# --- active health checks ---------------------------------------------------------------------


def test_health_checks_eject_a_dead_instance_and_readmit_it(
    shop: RunningServices, users2: KillableInstances
) -> None:
    config = settings(
        shop,
        [{"url": u} for u in users2.urls],
        health_check={**FAST_CHECKS, "healthy_threshold": 3},
        retries={"attempts": 1},
        outlier={"consecutive_failures": 1000},  # health checks alone decide here
    )
    with gateway(config) as (url, upstreams):
        pool = upstreams["users"]
        assert [i["state"] for i in users_state(url)] == ["healthy", "healthy"]
        users2.kill(1)
        wait_until(lambda: not pool.instances[1].healthy, "the dead instance marked unhealthy")
        state = users_state(url)[1]
        assert state["state"] == "unhealthy"
        assert state["reason"] == "2 failed probe(s) of /health"
        assert errors_of(lookups(url, 10)) == []  # the live one answers everything
        ready = httpx.get(f"{url}/readyz", trust_env=False).json()
        assert ready["upstreams"]["users"]["usable"] == 1

        users2.restart(1)
        wait_until(lambda: pool.instances[1].healthy, "the restarted instance readmitted")
        before = counts(users2.urls)
        assert errors_of(lookups(url, 10)) == []
        after = counts(users2.urls)
    assert after[1] - before[1] == 5  # round robin again over both
    assert after[0] - before[0] == 5


def test_probes_do_not_touch_business_endpoints(
    shop: RunningServices, users2: KillableInstances
) -> None:
    config = settings(shop, [{"url": u} for u in users2.urls], health_check=FAST_CHECKS)
    with gateway(config) as (_, upstreams):
        wait_until(lambda: upstreams["users"].health_checker.running, "the health checker running")
        time.sleep(0.3)  # several probe rounds
        assert counts(users2.urls) == [0, 0]
        assert upstreams["users"].health_checker.running
    assert not upstreams["users"].health_checker.running  # stopped with the app


# --- passive outlier detection ----------------------------------------------------------------


def test_failing_instance_is_ejected_with_growing_back_off(shop: RunningServices) -> None:
    failing = ServiceOptions(failure_rate=1.0, fail_status=503)
    with (
        KillableInstances("users", 1, failing) as bad,
        KillableInstances("users", 1) as good,
    ):
        config = settings(
            shop,
            [{"url": bad.urls[0]}, {"url": good.urls[0]}],
            retries={"attempts": 1},
            outlier={"consecutive_failures": 2, "ejection": "2s"},
        )
        with gateway(config) as (url, upstreams):
            bad_instance = upstreams["users"].instances[0]
            bodies = lookups(url, 4)
            assert len(errors_of(bodies)) == 2  # its two turns, then it is out
            state = users_state(url)[0]
            assert state["state"] == "ejected"
            assert state["reason"] == "2 consecutive failures, last: status 503"
            assert state["ejections"] == 1
            ready = httpx.get(f"{url}/readyz", trust_env=False).json()["upstreams"]["users"]
            assert ready["usable"] == 1  # readiness agrees with routing
            first = bad_instance.ejected_until - bad_instance.since
            assert errors_of(lookups(url, 6)) == []  # all on the good one meanwhile

            wait_until(lambda: not bad_instance.ejected(time.monotonic()), "the ejection over")
            assert len(errors_of(lookups(url, 4))) == 2
            assert bad_instance.ejections == 2
            second = bad_instance.ejected_until - bad_instance.since
        assert counts(bad.urls) == [4]
    assert first == pytest.approx(2.0)
    assert second == pytest.approx(4.0)  # the back-off grows


def test_retries_hide_a_failing_instance(shop: RunningServices) -> None:
    failing = ServiceOptions(failure_rate=1.0, fail_status=502)
    with (
        KillableInstances("users", 1, failing) as bad,
        KillableInstances("users", 1) as good,
    ):
        config = settings(
            shop,
            [{"url": bad.urls[0]}, {"url": good.urls[0]}],
            outlier={"consecutive_failures": 1000},
        )
        with gateway(config) as (url, _):
            bodies = lookups(url, 10)
        assert errors_of(bodies) == []
        assert counts(bad.urls + good.urls) == [5, 10]  # each of its turns retried elsewhere


# --- retries while an instance dies -----------------------------------------------------------


def test_zero_client_errors_while_one_of_three_is_killed_mid_load(
    shop: RunningServices, users3: KillableInstances
) -> None:
    config = settings(shop, [{"url": u} for u in users3.urls], health_check=FAST_CHECKS)
    stop = threading.Event()
    bodies: list[dict[str, Any]] = []

    def load(worker: int) -> None:
        client = GraphQLClient(url)
        try:
            k = 0
            while not stop.is_set():
                bodies.append(client.execute(USER, {"id": str(1 + (worker * 13 + k) % 50)}))
                k += 1
        finally:
            client.close()

    with gateway(config) as (url, upstreams), ThreadPoolExecutor(4) as pool:
        running = [pool.submit(load, w) for w in range(4)]
        wait_until(lambda: len(bodies) >= 40, "load flowing")
        users3.kill(1)
        killed_at = len(bodies)
        wait_until(lambda: not upstreams["users"].instances[1].healthy, "the dead one checked out")
        wait_until(lambda: len(bodies) >= killed_at + 40, "load after the kill")
        stop.set()
        for future in running:
            future.result()
    assert errors_of(bodies) == []
    assert len(bodies) >= 80


# --- zones ------------------------------------------------------------------------------------


def test_zone_failover_and_fail_back_are_logged_once(
    shop: RunningServices, users2: KillableInstances, caplog: pytest.LogCaptureFixture
) -> None:
    local, remote = users2.urls
    config = settings(
        shop,
        [{"url": local, "zone": "dc1"}, {"url": remote, "zone": "dc2"}],
        server={"zone": "dc1"},
        health_check=FAST_CHECKS,
    )
    caplog.set_level(logging.WARNING, "bff.upstream")
    with gateway(config) as (url, upstreams):
        pool = upstreams["users"]
        assert errors_of(lookups(url, 6)) == []
        assert counts(users2.urls) == [6, 0]  # its own zone only

        users2.kill(0)
        wait_until(lambda: not pool.instances[0].healthy, "the local instance unhealthy")
        assert errors_of(lookups(url, 6)) == []
        assert counts([remote]) == [6]
        assert admin(url)["users"]["failed_over"] is True

        users2.restart(0)
        wait_until(lambda: pool.instances[0].healthy, "the local instance back")
        assert errors_of(lookups(url, 6)) == []
        assert counts(users2.urls) == [6, 6]  # the restarted local one: 6 new, remote no more
        assert admin(url)["users"]["failed_over"] is False
    zone_lines = [r.getMessage() for r in caplog.records if "zone" in r.getMessage()]
    assert zone_lines == [
        "upstream users: no usable instance in zone dc1; failing over to dc2",
        "upstream users: zone dc1 usable again; failing back",
    ]


# --- panic mode and readiness -----------------------------------------------------------------


def test_panic_mode_serves_while_readyz_says_not_ready(
    shop: RunningServices, users2: KillableInstances
) -> None:
    """Every instance fails its health check (a path they do not serve) yet answers requests:
    the pool uses them all rather than failing every request, and /readyz tells the truth."""
    config = settings(
        shop, [{"url": u} for u in users2.urls], health_check={"path": "/no-such-health"}
    )
    with gateway(config) as (url, _):
        bodies = lookups(url, 6)
        ready = httpx.get(f"{url}/readyz", trust_env=False)
        pool_state = admin(url)["users"]
    assert errors_of(bodies) == []
    assert lookups_seen(users2.urls) == [3, 3]  # (the failing probes are counted too)
    assert ready.status_code == 503
    assert ready.json()["upstreams"]["users"]["usable"] == 0
    assert pool_state["panic"] is True
    assert [i["state"] for i in pool_state["instances"]] == ["unhealthy", "unhealthy"]


# --- max_connections: queue, bounded ----------------------------------------------------------


@pytest.fixture(scope="module")
def slow_users() -> Iterator[RunningServices]:
    with RunningServices([ServiceSpec("users", ServiceOptions(latency=0.2))]) as running:
        yield running


def outcomes(url: str, *, max_queue: int, calls: int) -> list[int | str]:
    """Statuses (or error codes) of `calls` concurrent calls through one connection."""

    async def scenario() -> list[int | str]:
        pool = UpstreamPool(
            "users",
            [Instance(url)],
            max_connections=1,
            max_queue=max_queue,
            total_timeout=5.0,
            attempts=1,
        )
        try:
            results = await asyncio.gather(
                *(pool.request("GET", f"/users/{k}") for k in range(1, calls + 1)),
                return_exceptions=True,
            )
        finally:
            await pool.aclose()
        return [r.status if not isinstance(r, BaseException) else type(r).__name__ for r in results]

    return asyncio.run(scenario())


def test_a_full_pool_queues_within_the_timeout(slow_users: RunningServices) -> None:
    assert outcomes(slow_users.url("users"), max_queue=3, calls=4) == [200] * 4


def test_the_queue_is_bounded(slow_users: RunningServices) -> None:
    results = outcomes(slow_users.url("users"), max_queue=1, calls=4)
    assert results == [200, 200, UpstreamUnavailable.__name__, UpstreamUnavailable.__name__]


# --- /admin/upstreams -------------------------------------------------------------------------


def test_admin_upstreams_needs_scope_admin(shop: RunningServices) -> None:
    config = settings(shop, [{"url": u} for u in shop.urls["users"]])
    with gateway(config) as (url, _):
        anonymous = httpx.get(f"{url}/admin/upstreams", trust_env=False)
        user = httpx.get(
            f"{url}/admin/upstreams",
            headers={"Authorization": f"Bearer {sign()}"},
            trust_env=False,
        )
        body = admin(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert user.status_code == 403
    assert user.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert set(body) == set(shop.urls)
    first = body["users"]["instances"][0]
    assert first["url"] == shop.urls["users"][0]
    assert first["state"] == "healthy"
    assert set(first) >= {"since", "in_flight", "latency_ms", "error_rate", "weight", "zone"}


def test_admin_upstreams_can_be_turned_off(shop: RunningServices) -> None:
    config = settings(shop, [{"url": shop.url("users")}], server={"admin": False})
    with gateway(config) as (url, _):
        token = sign(scopes=("admin",))
        response = httpx.get(
            f"{url}/admin/upstreams",
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
        )
    assert response.status_code == 404


# --- what a POST may and may not retry --------------------------------------------------------


def post_verify(urls: Sequence[str]) -> list[int | str]:
    """Two POST /verify calls through a round-robin pool over `urls` (default 2 attempts)."""

    async def scenario() -> list[int | str]:
        pool = UpstreamPool("auth", [Instance(u) for u in urls])
        results: list[int | str] = []
        try:
            for _ in range(2):
                try:
                    response = await pool.request(
                        "POST", "/verify", json={"username": "nobody", "password": "x"}
                    )
                    results.append(response.status)
                except UpstreamUnavailable as exc:
                    results.append(type(exc).__name__)
        finally:
            await pool.aclose()
        return results

    return asyncio.run(scenario())


def test_a_post_that_could_not_connect_is_retried_elsewhere(shop: RunningServices) -> None:
    dead = KillableInstances("auth", 1).start()
    dead_url = dead.urls[0]
    dead.stop()
    assert post_verify([dead_url, shop.url("auth")]) == [401, 401]  # both answered, by the live


def test_a_post_that_got_a_503_is_not_retried(shop: RunningServices) -> None:
    with KillableInstances("auth", 1, ServiceOptions(failure_rate=1.0)) as failing:
        urls = [failing.urls[0], shop.url("auth")]
        with httpx.Client(trust_env=False) as http:
            for url in urls:
                http.post(f"{url}/_stats/reset")
        assert post_verify(urls) == [503, 401]  # the 503 passes up: the POST may have acted
        assert counts(urls) == [1, 1]
