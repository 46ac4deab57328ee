"""Metering: records folded into per-minute counters, in memory and in a real Redis (two
replicas add up), read back by `GET /admin/usage` (scope admin) and `bff usage`."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from bff.cli import main
from bff.metering import MemoryUsageStore, Meter, RedisUsageStore, render_table, usage_report
from bff.metering.meter import fold
from bff.shared_state import SharedState
from bff.telemetry.hub import schema_fields
from services import RunningServices
from tests.support import (
    DASHBOARD,
    SHOP_SCHEMA,
    GraphQLClient,
    gateway_settings,
    running_gateway,
    sign,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
FIELDS = ["Query.orders", "Order.user", "User.name", "Query.me"]


async def fill(meter: Meter) -> None:
    meter.record("user:1", "Dashboard", ("Query.orders", "Order.user"), False, 10.0)
    meter.record("user:1", "Dashboard", ("Query.orders", "Order.user"), True, 30.0)
    meter.record("user:2", "Names", ("User.name",), False, 4.0)
    await meter.flush()


def test_fold_adds_up_alike_records_as_one_counter_each() -> None:
    at = 120.0  # minute 2
    records = [
        (at, "user:1", "Dashboard", ("Query.orders",), False, 10.0),
        (at + 1, "user:1", "Dashboard", ("Query.orders",), False, 5.0),
        (at + 2, "user:1", "Dashboard", ("Query.orders",), True, 1.0),
        (at + 60, "user:1", "Dashboard", ("Query.orders",), False, 7.0),  # the next minute
    ]
    buckets = fold(records)
    assert sorted(buckets) == [2, 3]
    name = "\x1f".join
    assert buckets[2] == {
        name(("op", "user:1", "Dashboard", "", "calls")): 3,
        name(("op", "user:1", "Dashboard", "", "ms")): 16.0,
        name(("op", "user:1", "Dashboard", "", "errors")): 1,
        name(("field", "user:1", "Dashboard", "Query.orders", "calls")): 3,
        name(("field", "user:1", "Dashboard", "Query.orders", "ms")): 16.0,
        name(("field", "user:1", "Dashboard", "Query.orders", "errors")): 1,
    }
    assert buckets[3][name(("op", "user:1", "Dashboard", "", "calls"))] == 1


def test_memory_report() -> None:
    async def scenario() -> None:
        meter = Meter(MemoryUsageStore())
        await fill(meter)
        report = (await usage_report(meter.store, FIELDS)).as_json()
        assert report["operations"] == [
            {"client": "user:1", "operation": "Dashboard", "calls": 2, "errors": 1, "avg_ms": 20.0},
            {"client": "user:2", "operation": "Names", "calls": 1, "errors": 0, "avg_ms": 4.0},
        ]
        fields = {f["field"]: f["calls"] for f in report["fields"]}
        assert fields == {"Query.orders": 2, "Order.user": 2, "User.name": 1}
        assert report["unused_fields"] == ["Query.me"]
        only = (await usage_report(meter.store, FIELDS, client="user:2")).as_json()
        assert [o["operation"] for o in only["operations"]] == ["Names"]
        assert only["unused_fields"] == ["Order.user", "Query.me", "Query.orders"]
        by_op = (await usage_report(meter.store, FIELDS, operation="Dashboard")).as_json()
        assert [c["client"] for c in by_op["clients"]] == ["user:1"]
        table = render_table(report)
        assert "Dashboard" in table and "fields nobody used (1):" in table and "Query.me" in table
        await meter.aclose()

    asyncio.run(scenario())


def test_records_outside_the_window_are_not_reported() -> None:
    async def scenario() -> None:
        meter = Meter(MemoryUsageStore())
        await fill(meter)
        later = (await usage_report(meter.store, FIELDS, window=60, now=10**10)).as_json()
        assert later["operations"] == [] and len(later["unused_fields"]) == 4

    asyncio.run(scenario())


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test-metering-{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_two_replicas_add_up_in_redis(redis_prefix: str) -> None:
    async def scenario() -> None:
        shared = [SharedState.at(REDIS_URL, redis_prefix) for _ in range(2)]
        replicas = [Meter(RedisUsageStore(s.redis, s.namespace("usage"))) for s in shared]
        for meter in replicas:
            await fill(meter)
        report = (await usage_report(replicas[0].store, FIELDS)).as_json()
        dashboard = report["operations"][0]
        assert (dashboard["calls"], dashboard["errors"], dashboard["avg_ms"]) == (4, 2, 20.0)
        for meter, state in zip(replicas, shared, strict=True):
            await meter.aclose()
            await state.aclose()

    asyncio.run(scenario())


def test_a_store_that_fails_costs_the_batch_not_the_caller() -> None:
    async def scenario() -> None:
        shared = SharedState.at("redis://127.0.0.1:9/0")  # nothing listens there
        meter = Meter(RedisUsageStore(shared.redis, shared.namespace("usage")))
        meter.record("user:1", "Dashboard", (), False, 1.0)
        await meter.flush()  # logs a warning, raises nothing
        assert meter.pending == []
        await meter.aclose()
        await shared.aclose()

    asyncio.run(scenario())


def test_admin_usage_endpoint(gql: GraphQLClient, gateway_url: str) -> None:
    gql.data(DASHBOARD, {"first": 2}, token=sign("7301"))
    http = gql.http
    assert http.get("/admin/usage").status_code == 401
    assert (
        http.get("/admin/usage", headers={"Authorization": f"Bearer {sign()}"}).status_code == 403
    )
    admin = {"Authorization": f"Bearer {sign('9', ('admin',))}"}
    response = http.get(
        "/admin/usage", params={"client": "user:7301", "window": "10m"}, headers=admin
    )
    assert response.status_code == 200
    report = response.json()
    (row,) = report["operations"]
    assert (row["client"], row["operation"], row["calls"], row["errors"]) == (
        "user:7301",
        "Dashboard",
        1,
        0,
    )
    used = {f["field"] for f in report["fields"]}
    assert {"Query.orders", "Order.user", "Product.averageRating"} <= used
    assert "Mutation.placeOrder" in report["unused_fields"]
    assert set(report["unused_fields"]) | used == set(schema_fields(SHOP_SCHEMA))
    bad = http.get("/admin/usage", params={"window": "soon"}, headers=admin)
    assert bad.status_code == 400


def test_bff_usage_command(
    gql: GraphQLClient, gateway_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gql.data(DASHBOARD, {"first": 1}, token=sign("8302"))
    token = sign("9", ("admin",))
    assert main(["usage", "--url", gateway_url, "--token", token, "--client", "user:8302"]) == 0
    out = capsys.readouterr().out
    assert "user:8302" in out and "Dashboard" in out and "fields nobody used" in out
    assert "Mutation.placeOrder" in out
    assert main(["usage", "--url", gateway_url]) == 1  # no token: the gateway says 401


def test_usage_with_redis_away_is_an_error_not_a_500(shop: RunningServices) -> None:
    settings = gateway_settings(shop.urls, redis={"url": "redis://127.0.0.1:9/0"})
    with running_gateway(settings) as url:
        admin = {"Authorization": f"Bearer {sign('9', ('admin',))}"}
        response = httpx.get(f"{url}/admin/usage", headers=admin, trust_env=False, timeout=10)
    assert response.status_code == 502
    assert response.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
