"""The engine serves any graph (SPEC section 12): the shop is one, a user's package another.

`tests/graphs/shipping.py` is a code-first service in one file (record, client, loader,
fields) added to the shop graph; a small shipping REST service runs here on loopback.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bff.app import create_app
from bff.auth import ANONYMOUS
from bff.config import ConfigError, Settings
from bff.graphs import load_graph, served_graph
from bff.serving import BackgroundServer
from bff.upstream import Upstreams
from services import RunningServices
from tests.graphs import shipping
from tests.support import SHOP, GraphQLClient, UpstreamCalls, gateway_settings, running_shop

SHIPMENTS = {
    n: {"orderId": n, "carrier": "DHL" if n % 2 else "UPS", "status": "sent"} for n in (1, 2, 3, 5)
}


class ShippingService:
    """A REST service the shop does not have: `GET /shipments?orderIds=1,2`."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

        async def shipments(request: Request) -> JSONResponse:
            self.calls[request.url.path] += 1
            ids = [int(i) for i in request.query_params.get("orderIds", "").split(",") if i]
            return JSONResponse({"items": [SHIPMENTS[i] for i in ids if i in SHIPMENTS]})

        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"})

        routes = [Route("/shipments", shipments), Route("/health", health)]
        self.app = Starlette(routes=routes)


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningServices]:
    with running_shop() as services:
        yield services


@pytest.fixture(scope="module")
def shipping_service() -> Iterator[tuple[ShippingService, str]]:
    service = ShippingService()
    with BackgroundServer(service.app) as server:
        yield service, server.url


def settings_with_shipping(shop: RunningServices, url: str, **extra: Any) -> Settings:
    return gateway_settings({**shop.urls, "shipping": [url]}, **extra)


SHIPMENTS_QUERY = """{ shipments(orderIds: ["1", "2", "3", "4", "5"]) {
  carrier status order { id user { name } } } }"""


def test_a_code_first_service_joins_the_shop_in_batched_calls(
    shop: RunningServices, shipping_service: tuple[ShippingService, str]
) -> None:
    service, url = shipping_service
    settings = settings_with_shipping(shop, url)
    calls = UpstreamCalls(shop)
    with BackgroundServer(create_app(settings, shipping.graph)) as gateway:
        client = GraphQLClient(gateway.url)
        calls.reset()
        service.calls.clear()
        data = client.data(SHIPMENTS_QUERY)
        client.close()
    by_service = calls.by_service()
    calls.http.close()
    shipments = data["shipments"]
    assert [s and s["carrier"] for s in shipments] == ["DHL", "UPS", "DHL", None, "DHL"]
    assert [s and s["order"]["id"] for s in shipments] == ["1", "2", "3", None, "5"]
    assert all(s is None or s["order"]["user"]["name"] for s in shipments)
    assert service.calls == Counter({"/shipments": 1})  # one batch for five keys
    assert by_service == Counter({"orders": 1, "users": 1})  # one batch a level


def test_graph_by_import_path_and_the_shop_fields_beside_it(
    shop: RunningServices, shipping_service: tuple[ShippingService, str]
) -> None:
    _, url = shipping_service
    settings = settings_with_shipping(shop, url, graph="tests.graphs.shipping:graph")
    with BackgroundServer(create_app(settings)) as gateway:
        client = GraphQLClient(gateway.url)
        data = client.data(
            '{ product(id: "1") { id name } shipments(orderIds: ["2"]) { carrier } }'
        )
        client.close()
    assert data == {
        "product": {"id": "1", "name": data["product"]["name"]},
        "shipments": [{"carrier": "UPS"}],
    }


def test_an_upstream_the_graph_calls_must_be_configured(shop: RunningServices) -> None:
    with pytest.raises(ConfigError) as error:
        create_app(gateway_settings(shop.urls), shipping.graph)
    assert error.value.errors == ["upstreams: missing shipping (the graph calls them)"]


def test_only_the_upstreams_the_graph_calls_are_required(shop: RunningServices) -> None:
    urls = {
        name: shop.urls[name] for name in ("catalog", "inventory", "reviews", "users", "orders")
    }
    served = served_graph(gateway_settings(urls))  # no auth upstream: no token mutations
    assert served.upstreams == {"catalog", "inventory", "reviews", "users", "orders"}
    assert served.schema.mutation_type is not None
    assert "login" not in served.schema.mutation_type.fields
    assert "placeOrder" in served.schema.mutation_type.fields
    with pytest.raises(ConfigError) as error:
        served_graph(gateway_settings({k: v for k, v in urls.items() if k != "inventory"}))
    assert error.value.errors == ["upstreams: missing inventory (the graph calls them)"]


def test_without_an_auth_upstream_the_token_doors_are_closed(shop: RunningServices) -> None:
    urls = {name: u for name, u in shop.urls.items() if name != "auth"}
    with BackgroundServer(create_app(gateway_settings(urls))) as gateway:
        http = httpx.Client(base_url=gateway.url, trust_env=False, timeout=10)
        token = http.post("/auth/token", data={"username": "alice", "password": "alice"})
        keys = http.get("/.well-known/jwks.json")
        client = GraphQLClient(gateway.url)
        login = client.post('mutation { login(username: "alice", password: "x") { accessToken } }')
        http.close()
        client.close()
    assert token.status_code == 404
    assert keys.status_code == 200
    assert login.status_code == 400
    assert "login" in login.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nowhere.at.all:graph", "graph: cannot import nowhere.at.all"),
        ("tests.graphs.shipping:nothing", "graph: tests.graphs.shipping:nothing is nothing"),
        ("tests.graphs.shipping:schema", "graph: tests.graphs.shipping:schema is Schema"),
    ],
)
def test_a_graph_that_cannot_be_loaded_is_a_config_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_graph(spec)
    assert error.value.errors[0].startswith(message)


def test_a_request_makes_only_the_clients_and_loaders_it_uses(shop: RunningServices) -> None:
    from bff.graphql.executor import GraphQLExecutor

    executor = GraphQLExecutor(SHOP.schema)
    prepared = executor.prepare('{ product(id: "1") { name stock } }')

    async def main() -> tuple[set[str], set[str]]:
        pools = Upstreams.from_settings(gateway_settings(shop.urls))
        await pools.start()
        try:
            context = SHOP.context(ANONYMOUS, pools)
            result = await executor.execute(
                prepared, operation_name=None, variables=None, context=context
            )
            assert result.errors is None and result.data is not None
            made = {name for name in vars(context.clients) if name not in ("pools", "headers")}
            loaders = {type(loader).__name__ for loader in context.loaders.made}
            return made, loaders
        finally:
            await pools.aclose()

    clients, loaders = asyncio.run(main())
    assert clients == {"catalog", "inventory"}
    assert loaders == {"ProductLoader", "StockLoader"}
