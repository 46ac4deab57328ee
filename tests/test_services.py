"""The sample REST services, exercised over real HTTP on loopback."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import (
    SERVICE_NAMES,
    RunningServices,
    ServiceOptions,
    ServiceSpec,
    build_shop_data,
    shop_data,
)
from services.cli import add_service_arguments, parse_latency, specs_from_args

DATA = shop_data(42)
ADMIN = {"sub": "1", "scopes": ["orders:read", "users:read:email", "admin"]}
LATENCY = 0.2


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningServices]:
    """Every service once, default options; tests here never write, so reads stay exact."""
    with RunningServices([ServiceSpec(name) for name in SERVICE_NAMES]) as running:
        yield running


@pytest.fixture(scope="module")
def cluster() -> Iterator[RunningServices]:
    """Injected faults, and two instances of the services that accept writes."""
    specs = [
        ServiceSpec("users", ServiceOptions(latency=LATENCY)),
        ServiceSpec("catalog", ServiceOptions(failure_rate=1.0)),
        ServiceSpec("orders", instances=2),
        ServiceSpec("reviews", instances=2),
    ]
    with RunningServices(specs) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        yield http


def get(client: httpx.Client, running: RunningServices, service: str, path: str) -> httpx.Response:
    return client.get(running.url(service) + path)


def assert_invalid(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_answers_health(
    shop: RunningServices, client: httpx.Client, name: str
) -> None:
    response = get(client, shop, name, "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# users


def test_user_by_id(shop: RunningServices, client: httpx.Client) -> None:
    user = get(client, shop, "users", "/users/7").json()
    assert user == DATA.users[7]
    assert set(user) == {"id", "name", "email", "createdAt"}


def test_missing_user_is_404(shop: RunningServices, client: httpx.Client) -> None:
    response = get(client, shop, "users", "/users/1001")
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


def test_user_batch_omits_missing_and_ignores_blanks(
    shop: RunningServices, client: httpx.Client
) -> None:
    body = get(client, shop, "users", "/users?ids=3,,1, 9999,3,").json()
    assert sorted(user["id"] for user in body["items"]) == [1, 3]


@pytest.mark.parametrize(
    "path", ["/users?ids=1,x", "/users?ids=-1", "/users?ids=0", "/users", "/users/abc"]
)
def test_bad_user_ids_are_422(shop: RunningServices, client: httpx.Client, path: str) -> None:
    assert_invalid(get(client, shop, "users", path))


# catalog


def test_product_by_id_and_404(shop: RunningServices, client: httpx.Client) -> None:
    assert get(client, shop, "catalog", "/products/42").json() == DATA.products[42]
    assert get(client, shop, "catalog", "/products/501").status_code == 404


def test_product_batch(shop: RunningServices, client: httpx.Client) -> None:
    body = get(client, shop, "catalog", "/products?ids=2,501,1").json()
    assert body == {"items": [DATA.products[2], DATA.products[1]]}


def test_products_page_by_id_with_total(shop: RunningServices, client: httpx.Client) -> None:
    first = get(client, shop, "catalog", "/products").json()
    assert [p["id"] for p in first["items"]] == list(range(1, 21))
    assert first["total"] == 500
    later = get(client, shop, "catalog", "/products?limit=5&offset=495").json()
    assert [p["id"] for p in later["items"]] == [496, 497, 498, 499, 500]
    assert get(client, shop, "catalog", "/products?offset=500").json()["items"] == []


def test_products_filtered_by_category(shop: RunningServices, client: httpx.Client) -> None:
    expected = DATA.product_ids_by_category["books"]
    body = get(client, shop, "catalog", "/products?category=books&limit=1000").json()
    assert [p["id"] for p in body["items"]] == expected
    assert body["total"] == len(expected)
    assert {p["category"] for p in body["items"]} == {"books"}
    empty = get(client, shop, "catalog", "/products?category=spaceships").json()
    assert empty == {"items": [], "total": 0}


@pytest.mark.parametrize("query", ["limit=1001", "limit=-1", "limit=ten", "offset=-1"])
def test_bad_paging_is_422(shop: RunningServices, client: httpx.Client, query: str) -> None:
    assert_invalid(get(client, shop, "catalog", f"/products?{query}"))


# orders


def test_order_by_id_and_404(shop: RunningServices, client: httpx.Client) -> None:
    order = get(client, shop, "orders", "/orders/1").json()
    assert order == DATA.orders[1]
    assert set(order["items"][0]) == {"productId", "quantity", "unitPrice"}
    assert get(client, shop, "orders", "/orders/999999").status_code == 404


def test_order_batch(shop: RunningServices, client: httpx.Client) -> None:
    body = get(client, shop, "orders", "/orders?ids=10,999999,20").json()
    assert sorted(order["id"] for order in body["items"]) == [10, 20]


def test_orders_newest_first_with_total(shop: RunningServices, client: httpx.Client) -> None:
    body = get(client, shop, "orders", "/orders?limit=3&offset=1").json()
    assert [order["id"] for order in body["items"]] == [4999, 4998, 4997]
    assert body["total"] == 5000


def test_orders_of_one_user(shop: RunningServices, client: httpx.Client) -> None:
    expected = sorted(DATA.order_ids_by_user[5], reverse=True)
    body = get(client, shop, "orders", "/orders?userId=5&limit=1000").json()
    assert [order["id"] for order in body["items"]] == expected
    assert body["total"] == len(expected)
    created = [order["createdAt"] for order in body["items"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    "body",
    [
        {"userId": 9999, "items": [{"productId": 1, "quantity": 1}]},
        {"userId": 1, "items": []},
        {"userId": 1, "items": [{"productId": 9999, "quantity": 1}]},
        {"userId": 1, "items": [{"productId": 1, "quantity": 0}]},
        {"userId": 1, "items": [{"productId": 1, "quantity": 101}]},
        {"userId": "1", "items": [{"productId": 1, "quantity": 1}]},
        [1, 2],
    ],
)
def test_invalid_order_is_422(shop: RunningServices, client: httpx.Client, body: object) -> None:
    assert_invalid(client.post(shop.url("orders") + "/orders", json=body))


def test_unknown_product_is_named(shop: RunningServices, client: httpx.Client) -> None:
    body = {"userId": 1, "items": [{"productId": 9999, "quantity": 1}]}
    response = client.post(shop.url("orders") + "/orders", json=body)
    assert response.json() == {"detail": "unknown product 9999"}


def test_placed_order_is_shared_by_instances(
    cluster: RunningServices, client: httpx.Client
) -> None:
    first, second = cluster.urls["orders"]
    body = {
        "userId": 2,
        "items": [{"productId": 3, "quantity": 2}, {"productId": 4, "quantity": 1}],
    }
    response = client.post(first + "/orders", json=body)
    assert response.status_code == 201
    order = response.json()
    assert order["id"] > 5000
    assert order["status"] == "pending"
    assert order["items"][0] == {
        "productId": 3,
        "quantity": 2,
        "unitPrice": DATA.products[3]["price"],
    }
    assert client.get(f"{second}/orders/{order['id']}").json() == order
    newest = client.get(second + "/orders?userId=2&limit=1").json()
    assert newest["items"] == [order]
    assert newest["total"] == len(DATA.order_ids_by_user[2]) + 1


# reviews


def test_reviews_of_products(shop: RunningServices, client: httpx.Client) -> None:
    body = get(client, shop, "reviews", "/reviews?productIds=1,2,3,9999").json()
    expected = [r for pid in (1, 2, 3) for r in DATA.reviews_by_product[pid]]
    assert sorted(body["items"], key=lambda r: r["id"]) == expected
    assert_invalid(get(client, shop, "reviews", "/reviews"))


@pytest.mark.parametrize(
    "body",
    [
        {"productId": 9999, "userId": 1, "rating": 5, "body": "ok"},
        {"productId": 1, "userId": 9999, "rating": 5, "body": "ok"},
        {"productId": 1, "userId": 1, "rating": 0, "body": "ok"},
        {"productId": 1, "userId": 1, "rating": 6, "body": "ok"},
        {"productId": 1, "userId": 1, "rating": 5, "body": "  "},
        {"productId": 1, "userId": 1, "rating": 5, "body": "x" * 2001},
    ],
)
def test_invalid_review_is_422(shop: RunningServices, client: httpx.Client, body: object) -> None:
    assert_invalid(client.post(shop.url("reviews") + "/reviews", json=body))


def test_added_review_is_listed(cluster: RunningServices, client: httpx.Client) -> None:
    first, second = cluster.urls["reviews"]
    body = {"productId": 10, "userId": 3, "rating": 4, "body": "Sturdy."}
    response = client.post(first + "/reviews", json=body)
    assert response.status_code == 201
    review = response.json()
    assert review == {"id": review["id"], **body}
    listed = client.get(second + "/reviews?productIds=10").json()["items"]
    assert listed[-1] == review
    assert len(listed) == len(DATA.reviews_by_product[10]) + 1


# inventory


def test_stock_batch(shop: RunningServices, client: httpx.Client) -> None:
    body = get(client, shop, "inventory", "/stock?productIds=5,9999,6").json()
    assert sorted(body["items"], key=lambda s: s["productId"]) == [DATA.stock[5], DATA.stock[6]]
    assert 0 <= body["items"][0]["available"] <= 100
    assert_invalid(get(client, shop, "inventory", "/stock?productIds=a"))


# auth


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        (
            "user1",
            "password1",
            {"sub": "1", "scopes": ["orders:read", "users:read:email", "admin"]},
        ),
        ("user2", "password2", {"sub": "2", "scopes": [], "roles": ["customer"]}),
    ],
)
def test_verify_good_credentials(
    shop: RunningServices,
    client: httpx.Client,
    username: str,
    password: str,
    expected: dict[str, object],
) -> None:
    response = client.post(
        shop.url("auth") + "/verify", json={"username": username, "password": password}
    )
    assert response.status_code == 200
    assert response.json().items() >= expected.items()
    assert "customer" in response.json()["roles"]


@pytest.mark.parametrize(
    ("username", "password"), [("user2", "password1"), ("nobody", "password1"), ("user0", "")]
)
def test_verify_bad_credentials_is_401(
    shop: RunningServices, client: httpx.Client, username: str, password: str
) -> None:
    response = client.post(
        shop.url("auth") + "/verify", json={"username": username, "password": password}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid credentials"}


def test_verify_malformed_body_is_422(shop: RunningServices, client: httpx.Client) -> None:
    assert_invalid(client.post(shop.url("auth") + "/verify", json={"username": 1}))
    assert_invalid(client.post(shop.url("auth") + "/verify", content=b"not json"))


# stats and injected faults


def test_stats_count_requests_and_reset(shop: RunningServices, client: httpx.Client) -> None:
    url = shop.url("inventory")
    client.post(url + "/_stats/reset")
    client.get(url + "/stock?productIds=1")
    client.get(url + "/stock?productIds=2,3")
    client.get(url + "/nowhere")
    client.get(url + "/health")
    assert client.get(url + "/_stats").json() == {
        "requests": 3,
        "by_path": {"GET /stock": 2, "GET /nowhere": 1},
        "last_headers": {},
    }
    client.post(url + "/_stats/reset")
    assert client.get(url + "/_stats").json() == {"requests": 0, "by_path": {}, "last_headers": {}}


def test_latency_delays_requests(cluster: RunningServices, client: httpx.Client) -> None:
    started = time.perf_counter()
    assert get(client, cluster, "users", "/users/1").status_code == 200
    assert time.perf_counter() - started >= LATENCY


def test_failure_rate_one_fails_every_request(
    cluster: RunningServices, client: httpx.Client
) -> None:
    for _ in range(3):
        response = get(client, cluster, "catalog", "/products/1")
        assert response.status_code == 503
        assert response.json() == {"detail": "injected failure"}
    assert get(client, cluster, "catalog", "/health").status_code == 200
    assert get(client, cluster, "catalog", "/_stats").json()["requests"] >= 3


def test_instances_listen_on_distinct_ports(cluster: RunningServices, client: httpx.Client) -> None:
    urls = cluster.urls["orders"]
    assert len(urls) == 2 and len(set(urls)) == 2
    assert all(client.get(url + "/health").status_code == 200 for url in urls)


# data, options and command line


def test_data_is_deterministic_per_seed() -> None:
    same = build_shop_data(42)
    assert same == DATA
    assert build_shop_data(7) != DATA
    assert len(DATA.users) >= 1000 and len(DATA.products) == 500 and len(DATA.orders) == 5000
    assert set(DATA.reviews_by_product) == set(DATA.products) == set(DATA.stock)
    created = [DATA.orders[oid]["createdAt"] for oid in sorted(DATA.orders)]
    assert created == sorted(created)


def test_bad_options_name_the_field() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        ServiceOptions(failure_rate=1.5)
    with pytest.raises(ValueError, match="nope"):
        ServiceSpec("nope")


@pytest.mark.parametrize(("text", "seconds"), [("10ms", 0.01), ("2s", 2.0), ("0.05", 0.05)])
def test_parse_latency(text: str, seconds: float) -> None:
    assert parse_latency(text) == pytest.approx(seconds)


def test_cli_port_layout() -> None:
    parser = argparse.ArgumentParser()
    add_service_arguments(parser)
    args = parser.parse_args(["orders", "auth", "--instances", "2", "--latency", "5ms"])
    specs, ports = specs_from_args(args)
    assert [spec.name for spec in specs] == ["orders", "auth"]
    assert specs[0].options.latency == pytest.approx(0.005)
    assert ports == {"orders": [9121, 9122], "auth": [9151, 9152]}


def test_python_m_services_serves_until_terminated(client: httpx.Client) -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "services", "--port-base", "0", "users"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines[1] == "ready"
        name, url = lines[0].split()
        assert name == "users" and url.startswith("http://127.0.0.1:")
        assert client.get(url + "/health").json() == {"status": "ok"}
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
