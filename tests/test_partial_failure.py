"""A failing upstream nulls only the fields it feeds, each with an error carrying its path.

Each scenario starts its own services (with injected faults) and its own gateway with short
time budgets, so a broken upstream costs milliseconds. Errors must say which upstream failed
and how, never what it answered or where it lives.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

import resolvers.objects
from services import ServiceOptions, ServiceSpec, shop_data
from tests.support import (
    DASHBOARD,
    GraphQLClient,
    gateway_settings,
    running_gateway,
    running_shop,
    sign,
)

DATA = shop_data(42)
FAST = {"timeout": {"connect": "200ms", "total": "300ms"}}
FAILING = ServiceOptions(failure_rate=1.0, fail_status=503)
FIRST = 5
NEWEST_FIRST = sorted(DATA.orders, reverse=True)[:FIRST]


@contextmanager
def faulty_gateway(
    *specs: ServiceSpec, replace: Mapping[str, Sequence[str]] | None = None
) -> Iterator[tuple[GraphQLClient, dict[str, list[str]]]]:
    """A gateway over a fresh shop with `specs`; `replace` swaps instance URLs of services."""
    with running_shop(*specs) as shop:
        urls = {**shop.urls, **{k: list(v) for k, v in (replace or {}).items()}}
        with running_gateway(gateway_settings(urls, FAST)) as url:
            client = GraphQLClient(url)
            try:
                yield client, urls
            finally:
                client.close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: bind a port, then give it back."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_nothing_leaks(body: dict[str, Any], urls: Mapping[str, Sequence[str]]) -> None:
    """No upstream body, URL, host or port in any error message or extension."""
    errors = json.dumps(body.get("errors", []))
    assert "injected failure" not in errors
    assert "http://" not in errors and "127.0.0.1" not in errors
    for instance_urls in urls.values():
        for url in instance_urls:
            port = url.rsplit(":", 1)[1]
            assert re.search(rf"\b{port}\b", errors) is None, (port, errors)


def dashboard_paths(field: str) -> set[tuple[Any, ...]]:
    """The path of `field` on every product line of the Dashboard of `FIRST` orders."""
    return {
        ("orders", "nodes", n, "items", i, "product", field)
        for n, oid in enumerate(NEWEST_FIRST)
        for i in range(len(DATA.orders[oid]["items"]))
    }


def average(product_id: int) -> float | None:
    ratings = [r["rating"] for r in DATA.reviews_by_product[product_id]]
    return round(sum(ratings) / len(ratings), 2) if ratings else None


def products_shown(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [i["product"] for n in body["data"]["orders"]["nodes"] for i in n["items"]]


def test_inventory_down_nulls_every_stock_and_keeps_the_rest() -> None:
    with faulty_gateway(ServiceSpec("inventory", FAILING)) as (client, urls):
        response = client.post(DASHBOARD, {"first": FIRST}, token=sign())
        assert response.status_code == 200
        body = response.json()

    nodes = body["data"]["orders"]["nodes"]
    assert [int(n["id"]) for n in nodes] == NEWEST_FIRST
    assert [n["user"]["name"] for n in nodes] == [
        DATA.users[DATA.orders[oid]["userId"]]["name"] for oid in NEWEST_FIRST
    ]
    shown = products_shown(body)
    line_ids = [i["productId"] for oid in NEWEST_FIRST for i in DATA.orders[oid]["items"]]
    assert [int(p["id"]) for p in shown] == line_ids
    assert [p["name"] for p in shown] == [DATA.products[pid]["name"] for pid in line_ids]
    assert [p["averageRating"] for p in shown] == [average(pid) for pid in line_ids]
    assert all(p["stock"] is None for p in shown)

    errors = body["errors"]
    assert {e["extensions"]["code"] for e in errors} == {"UPSTREAM_UNAVAILABLE"}
    paths = [tuple(e["path"]) for e in errors]
    assert len(paths) == len(set(paths))
    assert set(paths) == dashboard_paths("stock")
    assert ("orders", "nodes", 0, "items", 0, "product", "stock") in paths
    assert_nothing_leaks(body, urls)


def test_slow_reviews_time_out_into_null_ratings() -> None:
    with faulty_gateway(ServiceSpec("reviews", ServiceOptions(latency=1.0))) as (client, urls):
        started = time.monotonic()
        response = client.post(DASHBOARD, {"first": FIRST}, token=sign())
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    assert elapsed < 0.9  # the 300 ms budget, not the upstream's second

    shown = products_shown(body)
    assert all(p["averageRating"] is None for p in shown)
    assert [p["stock"] for p in shown] == [
        DATA.stock[i["productId"]]["available"]
        for oid in NEWEST_FIRST
        for i in DATA.orders[oid]["items"]
    ]
    errors = body["errors"]
    assert {e["extensions"]["code"] for e in errors} == {"UPSTREAM_TIMEOUT"}
    assert {tuple(e["path"]) for e in errors} == dashboard_paths("averageRating")
    assert_nothing_leaks(body, urls)


def test_an_instance_on_a_closed_port_is_unavailable() -> None:
    with faulty_gateway(replace={"inventory": [closed_port_url()]}) as (client, urls):
        body = client.execute("query($id: ID!) { product(id: $id) { id name stock } }", {"id": "1"})
    assert body["data"] == {"product": {"id": "1", "name": DATA.products[1]["name"], "stock": None}}
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["path"] == ["product", "stock"]
    assert_nothing_leaks(body, urls)


def test_users_down_nulls_the_user_but_not_the_product() -> None:
    with faulty_gateway(ServiceSpec("users", FAILING)) as (client, urls):
        body = client.execute(
            """query($u: ID!, $p: ID!) {
              user(id: $u) { id name }
              product(id: $p) { id name price }
            }""",
            {"u": "1", "p": "2"},
        )
    record = DATA.products[2]
    assert body["data"] == {
        "user": None,
        "product": {"id": "2", "name": record["name"], "price": record["price"]},
    }
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["path"] == ["user"]
    assert_nothing_leaks(body, urls)


def test_orders_down_nulls_all_data_but_answers_200() -> None:
    """`orders` is non-null, so its failure takes `data` with it, still as partial-data 200."""
    with faulty_gateway(ServiceSpec("orders", FAILING)) as (client, urls):
        response = client.post(DASHBOARD, {"first": FIRST}, token=sign())
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["path"] == ["orders"]
    assert_nothing_leaks(body, urls)


def test_unexpected_errors_are_masked_and_logged(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The session gateway serves from a thread of this process, so the patch and the log
    capture both reach it."""

    async def broken_stock(*args: object) -> int | None:
        raise RuntimeError("secret detail 123")

    monkeypatch.setattr(resolvers.objects, "stock", broken_stock)
    with caplog.at_level(logging.ERROR, logger="bff.errors"):
        response = gql.post("query($id: ID!) { product(id: $id) { name stock } }", {"id": "3"})

    assert response.status_code == 200
    assert "secret detail 123" not in response.text
    assert "RuntimeError" not in response.text
    body = response.json()
    assert body["data"] == {"product": {"name": DATA.products[3]["name"], "stock": None}}
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["product", "stock"]
    logged = [r for r in caplog.records if r.name == "bff.errors" and r.exc_info]
    assert logged, "the unexpected error must be logged with its exception"
    assert any(str(r.exc_info[1]) == "secret detail 123" for r in logged if r.exc_info)
    assert "secret detail 123" in caplog.text
