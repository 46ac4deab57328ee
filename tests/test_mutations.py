"""`placeOrder` and `addReview` through a gateway over a shop of their own.

Mutations write, so this module starts its own services and gateway: the orders and reviews it
adds never reach the session shop the other tests read exact totals from. Upstream calls are
counted at the services of this shop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services import RunningServices, shop_data
from tests.support import (
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    running_shop,
    sign,
)

DATA = shop_data(42)
MISSING_PRODUCT = max(DATA.products) + 1
BUYER = next(uid for uid in DATA.users if uid != 1)  # a plain user, no scopes
REVIEWER = next(uid for uid in DATA.users if uid not in (1, BUYER))
REVIEWED = next(pid for pid, rs in DATA.reviews_by_product.items() if rs)
UNTOUCHED = max(pid for pid in DATA.products if pid != REVIEWED)  # no test reviews it
LINES = [(3, 2), (7, 1), (3, 4)]  # (productId, quantity); a product may appear twice

PLACE_ORDER = """mutation Place($input: PlaceOrderInput!) { placeOrder(input: $input) {
  id status createdAt total
  user { id }
  items { quantity unitPrice product { id name } }
} }"""

ADD_REVIEW = """mutation Review($input: AddReviewInput!) { addReview(input: $input) {
  id rating body author { id name } product { id name }
} }"""


@pytest.fixture(scope="module")
def own_shop() -> Iterator[RunningServices]:
    with running_shop() as running:
        yield running


@pytest.fixture(scope="module")
def client(own_shop: RunningServices) -> Iterator[GraphQLClient]:
    with running_gateway(gateway_settings(own_shop.urls)) as url:
        gql = GraphQLClient(url)
        yield gql
        gql.close()


@pytest.fixture
def upstream(own_shop: RunningServices) -> Iterator[UpstreamCalls]:
    counter = UpstreamCalls(own_shop)
    counter.reset()
    yield counter
    counter.close()


def order_input(lines: list[tuple[Any, Any]]) -> dict[str, Any]:
    return {"input": {"items": [{"productId": str(p), "quantity": q} for p, q in lines]}}


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = body.get("errors")
    assert errors is not None and len(errors) == 1, body
    return errors[0]


# placeOrder


def test_place_order_for_the_token_user_and_read_it_back(
    client: GraphQLClient, upstream: UpstreamCalls
) -> None:
    token = sign(str(BUYER), [])
    order = client.data(PLACE_ORDER, order_input(LINES), token=token)["placeOrder"]

    assert order["status"] == "pending"
    assert order["user"] == {"id": str(BUYER)}
    assert order["items"] == [
        {
            "quantity": quantity,
            "unitPrice": DATA.products[pid]["price"],
            "product": {"id": str(pid), "name": DATA.products[pid]["name"]},
        }
        for pid, quantity in LINES
    ]
    expected_total = round(sum(q * DATA.products[p]["price"] for p, q in LINES), 2)
    assert order["total"] == expected_total
    assert int(order["id"]) > max(DATA.orders)

    posted = upstream.by_path("orders")["POST /orders"]
    assert posted == 1
    headers = upstream.last_headers("orders")
    assert headers["x-user-id"] == str(BUYER)
    assert "authorization" not in headers  # the client's own credentials stay at the gateway

    read = client.data(
        "query($id: ID!) { order(id: $id) { id status createdAt total user { id } "
        "items { quantity unitPrice product { id name } } } }",
        {"id": order["id"]},
        token=token,
    )["order"]
    assert read == order
    newest = client.data(
        "query($id: ID!) { user(id: $id) { orders(first: 1) { nodes { id } } } }",
        {"id": str(BUYER)},
        token=token,
    )["user"]["orders"]["nodes"]
    assert newest == [{"id": order["id"]}]


@pytest.mark.parametrize(
    "lines",
    [[], [(3, 0)], [(3, 1), (7, -2)], [("abc", 1)], [("0", 1)]],
    ids=["no-items", "quantity-0", "negative-quantity", "bad-product-id", "product-id-0"],
)
def test_place_order_input_checked_at_the_gateway(
    client: GraphQLClient, upstream: UpstreamCalls, lines: list[tuple[Any, Any]]
) -> None:
    body = client.execute(PLACE_ORDER, order_input(lines), token=sign(str(BUYER), []))
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["placeOrder"]
    assert body["data"] is None
    assert upstream.total() == 0


def test_place_order_of_an_unknown_product_keeps_the_upstream_reason(
    own_shop: RunningServices, client: GraphQLClient, upstream: UpstreamCalls
) -> None:
    direct = httpx.post(
        f"{own_shop.url('orders')}/orders",
        json={"userId": BUYER, "items": [{"productId": MISSING_PRODUCT, "quantity": 1}]},
        trust_env=False,
    )
    assert direct.status_code == 422
    detail = direct.json()["detail"]
    upstream.reset()

    body = client.execute(
        PLACE_ORDER, order_input([(MISSING_PRODUCT, 1)]), token=sign(str(BUYER), [])
    )
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == detail
    assert error["path"] == ["placeOrder"]
    assert upstream.by_path("orders") == {"POST /orders": 1}


def test_place_order_anonymously_is_unauthenticated(
    client: GraphQLClient, upstream: UpstreamCalls
) -> None:
    body = client.execute(PLACE_ORDER, order_input(LINES))
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["placeOrder"]
    assert body["data"] is None
    assert "POST /orders" not in upstream.by_path("orders")


# addReview


def review_input(product_id: Any, rating: int = 4, text: str = "Sturdy and fun.") -> dict[str, Any]:
    return {"input": {"productId": str(product_id), "rating": rating, "body": text}}


def test_add_review_is_written_by_the_token_user(
    client: GraphQLClient, upstream: UpstreamCalls
) -> None:
    product = REVIEWED
    ratings = [r["rating"] for r in DATA.reviews_by_product[product]]
    summary = """query($id: ID!) { product(id: $id) {
      reviewCount averageRating reviews(first: 100) { id } } }"""
    before = client.data(summary, {"id": str(product)})["product"]
    assert before["reviewCount"] == len(ratings)

    token = sign(str(REVIEWER), [])
    review = client.data(ADD_REVIEW, review_input(product, 2, "Fine."), token=token)["addReview"]
    assert review["rating"] == 2 and review["body"] == "Fine."
    assert review["author"] == {"id": str(REVIEWER), "name": DATA.users[REVIEWER]["name"]}
    assert review["product"] == {"id": str(product), "name": DATA.products[product]["name"]}
    assert upstream.by_path("reviews")["POST /reviews"] == 1
    assert upstream.last_headers("reviews")["x-user-id"] == str(REVIEWER)

    after = client.data(summary, {"id": str(product)})["product"]
    assert after["reviewCount"] == before["reviewCount"] + 1
    assert after["reviews"] == [*before["reviews"], {"id": review["id"]}]
    assert after["averageRating"] == round(sum([*ratings, 2]) / (len(ratings) + 1), 2)


def test_add_review_of_an_unknown_product_is_not_found(
    client: GraphQLClient, upstream: UpstreamCalls
) -> None:
    body = client.execute(ADD_REVIEW, review_input(MISSING_PRODUCT), token=sign(str(REVIEWER), []))
    error = only_error(body)
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["path"] == ["addReview"]
    assert body["data"] is None
    assert "POST /reviews" not in upstream.by_path("reviews")


def test_add_review_with_a_rating_out_of_range_is_bad_user_input(
    client: GraphQLClient,
) -> None:
    token = sign(str(REVIEWER), [])
    body = client.execute(ADD_REVIEW, review_input(UNTOUCHED, rating=9), token=token)
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "rating" in error["message"]
    assert error["path"] == ["addReview"]
    query = "query($id: ID!) { product(id: $id) { reviewCount } }"
    count = client.data(query, {"id": str(UNTOUCHED)})["product"]["reviewCount"]
    assert count == len(DATA.reviews_by_product[UNTOUCHED])


def test_add_review_anonymously_is_unauthenticated(
    client: GraphQLClient, upstream: UpstreamCalls
) -> None:
    body = client.execute(ADD_REVIEW, review_input(1))
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["addReview"]
    assert body["data"] is None
    assert upstream.total() == 0
