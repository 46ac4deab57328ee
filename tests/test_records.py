"""Records decoded straight from the services' bytes: the contract's shapes in, typed records
out, and anything else an `UPSTREAM_UNAVAILABLE` field error with partial data (never a 500,
never the body)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bff.serving import BackgroundServer
from services import RunningServices
from tests.support import GraphQLClient, gateway_settings, running_gateway, running_shop
from upstream_clients.catalog import PRODUCTS
from upstream_clients.records import Product

GOOD = {"id": 7, "name": "Lamp", "price": 12, "currency": "EUR", "category": "home"}

BROKEN: dict[str, Any] = {
    "a string id": {"items": [{**GOOD, "id": "seven"}]},
    "a missing field": {"items": [{k: v for k, v in GOOD.items() if k != "name"}]},
    "items not a list": {"items": {"id": 7}},
    "no items": {"products": [GOOD]},
    "a null price": {"items": [{**GOOD, "price": None}]},
}


def test_the_contract_decodes_to_records_and_extra_keys_are_ignored() -> None:
    body = b'{"items": [{"id": 7, "name": "Lamp", "price": 12, "currency": "EUR",'
    body += b' "category": "home", "colour": "red"}]}'
    (product,) = PRODUCTS.decode(body).items
    assert product == Product(7, "Lamp", 12.0, "EUR", "home")
    assert isinstance(product.price, float)


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningServices]:
    with running_shop() as services:
        yield services


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_answer_of_another_shape_is_a_coded_field_error(
    shop: RunningServices, case: str
) -> None:
    async def products(request: Request) -> JSONResponse:
        return JSONResponse(BROKEN[case])

    catalog = Starlette(routes=[Route("/products", products), Route("/health", products)])
    with BackgroundServer(catalog) as broken:
        settings = gateway_settings({**shop.urls, "catalog": [broken.url]})
        with running_gateway(settings) as url:
            client = GraphQLClient(url)
            body = client.execute(
                '{ user(id: "1") { id } users(ids: ["1"]) { id } product(id: "7") { name } }'
            )
            client.close()
    assert body["data"] == {"user": {"id": "1"}, "users": [{"id": "1"}], "product": None}
    (error,) = body["errors"]
    assert error["path"] == ["product"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "Lamp" not in str(body) and "seven" not in str(body)
