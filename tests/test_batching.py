"""Batching: each upstream is called once per level of a query, counted at the services.

`calls` counts the requests the services themselves received (all instances added up), so
these tests see exactly what the gateway sent, whatever the balancer did.
"""

from __future__ import annotations

import pytest

from services import shop_data
from tests.support import DASHBOARD, GraphQLClient, UpstreamCalls, sign

DATA = shop_data(42)
NEWEST_FIRST = sorted(DATA.orders, reverse=True)


def dashboard_ids(first: int) -> tuple[list[int], list[int]]:
    """User ids and product ids (one per order line) the Dashboard of `first` orders shows."""
    orders = [DATA.orders[oid] for oid in NEWEST_FIRST[:first]]
    users = [o["userId"] for o in orders]
    products = [i["productId"] for o in orders for i in o["items"]]
    return users, products


@pytest.mark.parametrize("first", [20, 100])
def test_dashboard_makes_exactly_five_upstream_calls(
    gql: GraphQLClient, calls: UpstreamCalls, first: int
) -> None:
    users, products = dashboard_ids(first)
    # The window repeats products across orders: a naive resolver would call once per line.
    assert len(set(products)) < len(products)

    nodes = gql.data(DASHBOARD, {"first": first}, token=sign())["orders"]["nodes"]

    assert [int(n["id"]) for n in nodes] == NEWEST_FIRST[:first]
    assert [int(n["user"]["id"]) for n in nodes] == users
    shown = [item["product"] for n in nodes for item in n["items"]]
    assert [int(p["id"]) for p in shown] == products
    assert [p["stock"] for p in shown] == [DATA.stock[pid]["available"] for pid in products]
    assert calls.by_path("orders") == {"GET /orders": 1}
    assert calls.by_path("users") == {"GET /users": 1}
    assert calls.by_path("catalog") == {"GET /products": 1}
    assert calls.by_path("inventory") == {"GET /stock": 1}
    assert calls.by_path("reviews") == {"GET /reviews": 1}
    assert calls.total() == 5


def test_duplicate_user_ids_make_one_batch_call(gql: GraphQLClient, calls: UpstreamCalls) -> None:
    ids = ["1", "1", "2", "2", "3"]
    users = gql.data("query($ids: [ID!]!) { users(ids: $ids) { id name } }", {"ids": ids})
    assert [u["id"] for u in users["users"]] == ids
    assert calls.by_path("users") == {"GET /users": 1}
    assert calls.total() == 1


def test_two_hundred_user_ids_make_one_call(gql: GraphQLClient, calls: UpstreamCalls) -> None:
    ids = [str(uid) for uid in sorted(DATA.users)[:200]]
    users = gql.data("query($ids: [ID!]!) { users(ids: $ids) { id } }", {"ids": ids})["users"]
    assert [u["id"] for u in users] == ids
    assert calls.by_path("users") == {"GET /users": 1}
    assert calls.total() == 1


def test_listed_products_are_primed_so_no_catalog_batch(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    """The list answer already holds the products: stock and reviews batch, the catalog does not."""
    query = "{ products(first: 50) { nodes { id stock reviewCount } } }"
    nodes = gql.data(query)["products"]["nodes"]
    ids = sorted(DATA.products)[:50]
    assert nodes == [
        {
            "id": str(pid),
            "stock": DATA.stock[pid]["available"],
            "reviewCount": len(DATA.reviews_by_product[pid]),
        }
        for pid in ids
    ]
    assert calls.by_path("catalog") == {"GET /products": 1}  # the list, no batch after it
    assert calls.by_path("inventory") == {"GET /stock": 1}
    assert calls.by_path("reviews") == {"GET /reviews": 1}
    assert calls.total() == 3


def test_aliased_root_products_share_one_catalog_call(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    query = """query($a: ID!, $b: ID!) {
      first: product(id: $a) { id name }
      second: product(id: $b) { id name }
      again: product(id: $a) { id }
    }"""
    data = gql.data(query, {"a": "4", "b": "9"})
    assert data == {
        "first": {"id": "4", "name": DATA.products[4]["name"]},
        "second": {"id": "9", "name": DATA.products[9]["name"]},
        "again": {"id": "4"},
    }
    assert calls.by_path("catalog") == {"GET /products": 1}
    assert calls.total() == 1


def test_user_orders_cost_one_orders_call_per_user(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    """`User.orders` pages one user's orders; the orders service has no batch form of
    `GET /orders?userId=U&limit=N&offset=M`, so each user costs one call (made concurrently),
    while the users themselves still come in one batch."""
    owners = [uid for uid, ids in DATA.order_ids_by_user.items() if len(ids) >= 2][:3]
    query = "query($ids: [ID!]!) { users(ids: $ids) { id orders(first: 2) { nodes { id } } } }"
    users = gql.data(query, {"ids": [str(u) for u in owners]}, token=sign())["users"]
    assert [[int(n["id"]) for n in u["orders"]["nodes"]] for u in users] == [
        sorted(DATA.order_ids_by_user[uid], reverse=True)[:2] for uid in owners
    ]
    assert calls.by_path("users") == {"GET /users": 1}
    assert calls.by_path("orders") == {"GET /orders": len(owners)}
    assert calls.total() == 1 + len(owners)
