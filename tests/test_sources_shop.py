"""The shop's REST contract served from OpenAPI documents alone (`graph: none`, SPEC section 12).

The documents under `bench/openapi/shop/` describe the sample services; links join them so
that the Dashboard is 5 upstream calls, counted at the services, as the code-first shop's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bench.openapi import DASHBOARD, shop_sources
from bff.app import create_app
from bff.graphs import served_graph
from bff.persisted import sha256_hex
from bff.serving import BackgroundServer
from bff.telemetry.hub import Telemetry
from services import RunningServices, ServiceSpec, shop_data
from tests.support import (
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    sign,
)

DATA = shop_data(42)
NEWEST_FIRST = sorted(DATA.orders, reverse=True)
SOURCE_UPSTREAMS = ("users", "catalog", "orders", "reviews", "inventory")


def source_urls(shop: RunningServices, **replace: str) -> dict[str, list[str]]:
    urls = {name: [url] for name, url in replace.items()}
    return {name: urls.get(name) or list(shop.urls[name]) for name in SOURCE_UPSTREAMS}


@pytest.fixture(scope="module")
def sources_gql(shop: RunningServices) -> Iterator[GraphQLClient]:
    # a Dashboard of 100 orders costs more than the default `max_cost` (see the cost test)
    settings = gateway_settings(source_urls(shop), limits={"max_cost": 100_000}, **shop_sources())
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        yield client
        client.close()


@pytest.mark.parametrize("limit", [20, 100])
def test_the_dashboard_from_openapi_is_five_upstream_calls(
    sources_gql: GraphQLClient, calls: UpstreamCalls, limit: int
) -> None:
    orders = sources_gql.data(DASHBOARD, {"limit": limit}, token=sign())["orders"]["items"]

    expected = [DATA.orders[oid] for oid in NEWEST_FIRST[:limit]]
    assert [o["id"] for o in orders] == [o["id"] for o in expected]
    assert [o["status"] for o in orders] == [o["status"] for o in expected]
    assert [o["user"] for o in orders] == [
        {"id": o["userId"], "name": DATA.users[o["userId"]]["name"]} for o in expected
    ]
    lines = [line for o in orders for line in o["items"]]
    product_ids = [line["productId"] for o in expected for line in o["items"]]
    assert len(set(product_ids)) < len(product_ids)  # repeated products: still one batch
    assert [line["product"]["id"] for line in lines] == product_ids
    assert [line["product"]["stock"]["available"] for line in lines] == [
        DATA.stock[pid]["available"] for pid in product_ids
    ]
    reviews = DATA.reviews_by_product
    ratings = {pid: [r["rating"] for r in reviews.get(pid, [])] for pid in product_ids}
    assert [[r["rating"] for r in line["product"]["reviews"]] for line in lines] == [
        ratings[pid] for pid in product_ids
    ]
    assert calls.by_path("orders") == {"GET /orders": 1}
    assert calls.by_path("users") == {"GET /users": 1}
    assert calls.by_path("catalog") == {"GET /products": 1}
    assert calls.by_path("inventory") == {"GET /stock": 1}
    assert calls.by_path("reviews") == {"GET /reviews": 1}
    assert calls.total() == 5


def test_a_lookup_the_upstream_does_not_know_is_null_without_error(
    sources_gql: GraphQLClient,
) -> None:
    body = sources_gql.execute(
        "{ order(id: 999999) { id } product(id: 999999) { id } user(id: 1) { id name } }",
        token=sign(),
    )
    assert "errors" not in body
    assert body["data"]["order"] is None and body["data"]["product"] is None
    assert body["data"]["user"] == {"id": 1, "name": DATA.users[1]["name"]}


def test_fields_of_a_source_need_its_auth(sources_gql: GraphQLClient, calls: UpstreamCalls) -> None:
    body = sources_gql.execute("{ user(id: 1) { id } }")
    assert body["data"] == {"user": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert calls.total() == 0  # refused before any upstream call


def test_upstreams_receive_the_callers_identity(
    sources_gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    sources_gql.data("{ user(id: 2) { id } }", token=sign("7", ["orders:read"]))
    seen = calls.last_headers("users")
    assert seen["x-user-id"] == "7"
    assert seen["x-user-scopes"] == "orders:read"


def test_a_rejected_mutation_is_bad_user_input_with_the_upstreams_detail(
    sources_gql: GraphQLClient,
) -> None:
    body = sources_gql.execute(
        "mutation { placeOrder(input: {userId: 999999, items: [{productId: 1, quantity: 1}]}) "
        "{ id } }",
        token=sign(),
    )
    assert body["data"] == {"placeOrder": None}
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "unknown user 999999"
    assert error["path"] == ["placeOrder"]


def test_a_mutation_posts_its_input_as_the_json_body() -> None:
    # its own orders and users: the session's shop must keep its seeded orders
    with RunningServices([ServiceSpec("orders"), ServiceSpec("users")]) as own:
        dead = {name: "http://127.0.0.1:1" for name in ("catalog", "reviews", "inventory")}
        urls = source_urls(own, **dead)
        with running_gateway(gateway_settings(urls, **shop_sources())) as url:
            client = GraphQLClient(url)
            placed = client.data(
                "mutation($input: NewOrderInput!) { placeOrder(input: $input) "
                "{ id userId status items { productId quantity } user { id } } }",
                {"input": {"userId": 5, "items": [{"productId": 3, "quantity": 2}]}},
                token=sign(),
            )["placeOrder"]
            again = client.data("query($id: Int!) { order(id: $id) { id } }", placed, token=sign())
            client.close()
    assert placed["userId"] == 5 and placed["user"] == {"id": 5}
    assert placed["items"] == [{"productId": 3, "quantity": 2}]
    assert placed["status"] == "pending"
    assert again == {"order": {"id": placed["id"]}}


def test_a_failing_upstream_nulls_only_the_fields_it_feeds(shop: RunningServices) -> None:
    urls = source_urls(shop, inventory="http://127.0.0.1:1")
    with running_gateway(gateway_settings(urls, **shop_sources())) as url:
        client = GraphQLClient(url)
        body = client.execute(DASHBOARD, {"limit": 2}, token=sign())
        client.close()
    orders = body["data"]["orders"]["items"]
    assert [o["id"] for o in orders] == NEWEST_FIRST[:2]
    products = [line["product"] for o in orders for line in o["items"]]
    assert products and all(p["stock"] is None and p["name"] for p in products)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UPSTREAM_UNAVAILABLE"}
    assert {tuple(e["path"][-1:]) for e in body["errors"]} == {("stock",)}
    assert len(body["errors"]) == len(products)  # one error per field it fed, with its path


def test_keys_beyond_max_batch_are_split_into_calls(shop: RunningServices) -> None:
    config = shop_sources()
    for source in config["sources"]:
        source["max_batch"] = 7
    expected = [DATA.orders[oid] for oid in NEWEST_FIRST[:30]]
    users = {o["userId"] for o in expected}
    calls = UpstreamCalls(shop)
    with running_gateway(gateway_settings(source_urls(shop), **config)) as url:
        client = GraphQLClient(url)
        calls.reset()
        orders = client.data("{ orders(limit: 30) { items { id user { id } } } }", token=sign())[
            "orders"
        ]["items"]
        client.close()
    assert [o["user"]["id"] for o in orders] == [o["userId"] for o in expected]
    assert calls.by_path("users") == {"GET /users": -(-len(users) // 7)}
    calls.close()


COSTED = "{ orders(limit: 3) { items { id items { quantity } } } }"


@pytest.mark.parametrize(("list_size", "cost"), [(None, 1 + 3 * (1 + 1 + 1 + 10)), (2, 16)])
def test_generated_lists_cost_their_limit_else_the_default_list_size(
    shop: RunningServices, list_size: int | None, cost: int
) -> None:
    # `orders(limit: 3)` multiplies its page by 3 (its `items` are that page); an order's own
    # `items` have no bound: `limits.default_list_size` (10 unless set)
    limits = {} if list_size is None else {"default_list_size": list_size}
    settings = gateway_settings(source_urls(shop), limits=limits, **shop_sources())
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        body = client.execute(COSTED, token=sign())
        refused = client.post(COSTED.replace("3", "4000"), token=sign())
        client.close()
    assert body["extensions"]["cost"] == cost
    assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_generated_fields_get_batch_and_client_spans(shop: RunningServices) -> None:
    exporter = InMemorySpanExporter()
    settings = gateway_settings(source_urls(shop), **shop_sources())
    telemetry = Telemetry(settings, served_graph(settings).schema, exporter=exporter)
    with BackgroundServer(create_app(settings, telemetry=telemetry)) as server:
        client = GraphQLClient(server.url)
        client.data(DASHBOARD, {"limit": 3}, token=sign())
        client.close()
        assert telemetry.tracing is not None and telemetry.tracing.flush()
    spans = exporter.get_finished_spans()
    (operation,) = [s for s in spans if s.name == "query Dashboard"]
    batches = [s for s in spans if s.name.startswith("dataloader ")]
    assert sorted(str(s.attributes["bff.upstream"]) for s in batches) == [  # type: ignore[index]
        "catalog", "inventory", "reviews", "users",
    ]  # fmt: skip
    assert all(s.parent is not None and s.parent.span_id == operation.context.span_id
               for s in batches)  # fmt: skip
    clients = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert sorted(str(s.attributes["bff.upstream"]) for s in clients) == [  # type: ignore[index]
        "catalog", "inventory", "orders", "reviews", "users",
    ]  # fmt: skip


def test_generated_fields_are_metered(sources_gql: GraphQLClient) -> None:
    sources_gql.data(DASHBOARD, {"limit": 2}, token=sign("7302"))
    admin = {"Authorization": f"Bearer {sign('9', ('admin',))}"}
    response = sources_gql.http.get(
        "/admin/usage", params={"client": "user:7302", "window": "10m"}, headers=admin
    )
    assert response.status_code == 200
    report = response.json()
    assert [(r["operation"], r["calls"]) for r in report["operations"]] == [("Dashboard", 1)]
    used = {f["field"] for f in report["fields"]}
    assert {"Query.orders", "Order.user", "OrderLine.product", "Product.reviews"} <= used
    assert "Mutation.placeOrder" in report["unused_fields"]


def test_a_generated_query_can_be_persisted(sources_gql: GraphQLClient) -> None:
    query = "{ user(id: 4) { id name } }"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}
    headers = {"Authorization": f"Bearer {sign()}", "Accept": "application/json"}

    def send(body: dict[str, object]) -> dict[str, object]:
        answer: dict[str, object] = sources_gql.http.post(
            "/graphql", json=body, headers=headers
        ).json()
        return answer

    unknown = send({"extensions": extensions})
    assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"  # type: ignore[index]
    assert send({"query": query, "extensions": extensions})["data"] == {
        "user": {"id": 4, "name": DATA.users[4]["name"]}
    }
    assert send({"extensions": extensions})["data"] == {
        "user": {"id": 4, "name": DATA.users[4]["name"]}
    }  # by its hash alone
