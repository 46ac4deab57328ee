"""Every root query and every object field of the GraphQL contract, checked against the sample data.

The session gateway fronts the seeded shop (seed 42), so each expected value is derived from
`shop_data(42)`; nothing here writes, so the data stays exact.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from services import shop_data
from services.data import OrderRecord, ReviewRecord
from tests.support import GraphQLClient, sign

DATA = shop_data(42)

MISSING_USER = max(DATA.users) + 1
MISSING_PRODUCT = max(DATA.products) + 1
MISSING_ORDER = max(DATA.orders) + 1

# A product with more reviews than the default page of five, and one with none at all.
RICH = next(pid for pid, rs in DATA.reviews_by_product.items() if len(rs) > 5)
UNREVIEWED = next(pid for pid, rs in DATA.reviews_by_product.items() if not rs)
# A plain user (no scopes) with enough orders to page through.
OWNER = next(uid for uid, ids in DATA.order_ids_by_user.items() if uid != 1 and len(ids) >= 5)
OWNER_ORDER = DATA.order_ids_by_user[OWNER][0]
OTHER = next(uid for uid in DATA.users if uid not in (1, OWNER))
OTHERS_ORDER = next(oid for oid, order in DATA.orders.items() if order["userId"] not in (1, OWNER))
CATEGORY = DATA.products[1]["category"]

# Signed at collection, so valid for the whole run however long the suite takes.
ADMIN = sign(ttl=3600)  # user 1: orders:read and users:read:email
PLAIN = sign(str(OWNER), [], ttl=3600)

PRODUCT_FIELDS = """
fragment ProductFields on Product {
  id name price currency category stock reviewCount averageRating
}
"""

ORDER_FIELDS = """
fragment OrderFields on Order {
  id status createdAt total
  user { id name }
  items { quantity unitPrice product { id name price } }
}
"""


def reviews_of(product_id: int) -> list[ReviewRecord]:
    return sorted(DATA.reviews_by_product[product_id], key=lambda r: r["id"])


def average(product_id: int) -> float | None:
    reviews = reviews_of(product_id)
    if not reviews:
        return None
    return round(sum(r["rating"] for r in reviews) / len(reviews), 2)


def total_of(order: OrderRecord) -> float:
    return round(sum(i["quantity"] * i["unitPrice"] for i in order["items"]), 2)


def expected_product(product_id: int) -> dict[str, Any]:
    p = DATA.products[product_id]
    return {
        "id": str(product_id),
        "name": p["name"],
        "price": p["price"],
        "currency": p["currency"],
        "category": p["category"],
        "stock": DATA.stock[product_id]["available"],
        "reviewCount": len(DATA.reviews_by_product[product_id]),
        "averageRating": average(product_id),
    }


def expected_order(order_id: int) -> dict[str, Any]:
    o = DATA.orders[order_id]
    return {
        "id": str(order_id),
        "status": o["status"],
        "createdAt": o["createdAt"],
        "total": total_of(o),
        "user": {"id": str(o["userId"]), "name": DATA.users[o["userId"]]["name"]},
        "items": [
            {
                "quantity": i["quantity"],
                "unitPrice": i["unitPrice"],
                "product": {
                    "id": str(i["productId"]),
                    "name": DATA.products[i["productId"]]["name"],
                    "price": DATA.products[i["productId"]]["price"],
                },
            }
            for i in o["items"]
        ],
    }


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = body.get("errors")
    assert errors is not None and len(errors) == 1, body
    return errors[0]


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# user, users, me, User.email


def test_user_by_id_with_variables(gql: GraphQLClient) -> None:
    query = "query One($id: ID!) { user(id: $id) { id name email } }"
    user = gql.data(query, {"id": str(OTHER)}, token=ADMIN)["user"]
    record = DATA.users[OTHER]
    assert user == {"id": str(OTHER), "name": record["name"], "email": record["email"]}


def test_missing_lookups_are_null_without_errors(gql: GraphQLClient) -> None:
    query = """query Missing($u: ID!, $p: ID!, $o: ID!) {
      user(id: $u) { id } product(id: $p) { id } order(id: $o) { id } }"""
    variables = {"u": str(MISSING_USER), "p": str(MISSING_PRODUCT), "o": str(MISSING_ORDER)}
    body = gql.execute(query, variables, token=ADMIN)
    assert body == {
        "data": {"user": None, "product": None, "order": None},
        "extensions": {"cost": 6},
    }


def test_users_are_positional_with_duplicates_and_nulls(gql: GraphQLClient) -> None:
    ids = [OTHER, MISSING_USER, 1, OTHER, 2]
    users = gql.data(
        "query($ids: [ID!]!) { users(ids: $ids) { id name } }", {"ids": [str(i) for i in ids]}
    )["users"]
    expected = [
        None if uid not in DATA.users else {"id": str(uid), "name": DATA.users[uid]["name"]}
        for uid in ids
    ]
    assert users == expected
    assert users[1] is None and users[0] == users[3]


def test_users_of_no_ids_is_an_empty_list(gql: GraphQLClient) -> None:
    assert gql.data("{ users(ids: []) { id } }") == {"users": []}


def test_email_is_shown_to_its_owner_and_to_the_email_scope(gql: GraphQLClient) -> None:
    query = "query($id: ID!) { user(id: $id) { id email } }"
    own = gql.data(query, {"id": str(OWNER)}, token=PLAIN)["user"]
    assert own == {"id": str(OWNER), "email": DATA.users[OWNER]["email"]}
    scoped = gql.data(query, {"id": str(OWNER)}, token=ADMIN)["user"]
    assert scoped["email"] == DATA.users[OWNER]["email"]


def test_email_of_someone_else_is_forbidden_but_the_user_stays(gql: GraphQLClient) -> None:
    body = gql.execute(
        "query($id: ID!) { user(id: $id) { id name email } }", {"id": str(OTHER)}, token=PLAIN
    )
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["user", "email"]
    assert body["data"]["user"] == {
        "id": str(OTHER),
        "name": DATA.users[OTHER]["name"],
        "email": None,
    }


def test_me_is_the_token_subject(gql: GraphQLClient) -> None:
    me = gql.data("{ me { id name email } }", token=PLAIN)["me"]
    record = DATA.users[OWNER]
    assert me == {"id": str(OWNER), "name": record["name"], "email": record["email"]}


def test_me_without_a_token_is_unauthenticated(gql: GraphQLClient) -> None:
    body = gql.execute("{ me { id } }")
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["me"]
    assert body["data"] == {"me": None}


# product, Product.*, Review.*


def test_product_with_every_field_reviews_and_authors(gql: GraphQLClient) -> None:
    query = (
        PRODUCT_FIELDS
        + """query Product($id: ID!) { product(id: $id) {
          ...ProductFields
          reviews(first: 2) { id rating body author { id name } product { id name } }
          defaultPage: reviews { id }
          everything: reviews(first: 100) { id }
        } }"""
    )
    product = gql.data(query, {"id": str(RICH)})["product"]
    reviews = reviews_of(RICH)
    assert {k: product[k] for k in expected_product(RICH)} == expected_product(RICH)
    assert product["reviews"] == [
        {
            "id": str(r["id"]),
            "rating": r["rating"],
            "body": r["body"],
            "author": {"id": str(r["userId"]), "name": DATA.users[r["userId"]]["name"]},
            "product": {"id": str(RICH), "name": DATA.products[RICH]["name"]},
        }
        for r in reviews[:2]
    ]
    assert product["defaultPage"] == [{"id": str(r["id"])} for r in reviews[:5]]
    assert product["everything"] == [{"id": str(r["id"])} for r in reviews]
    assert product["averageRating"] == round(product["averageRating"], 2)


def test_product_without_reviews(gql: GraphQLClient) -> None:
    query = "query($id: ID!) { product(id: $id) { reviews { id } reviewCount averageRating } }"
    product = gql.data(query, {"id": str(UNREVIEWED)})["product"]
    assert product == {"reviews": [], "reviewCount": 0, "averageRating": None}


def test_aliases_fetch_several_products(gql: GraphQLClient) -> None:
    query = (
        PRODUCT_FIELDS
        + '{ a: product(id: "1") { ...ProductFields } b: product(id: "2") { ...ProductFields } }'
    )
    data = gql.data(query)
    assert data == {"a": expected_product(1), "b": expected_product(2)}


# products


def test_products_default_page_is_the_first_twenty_by_id(gql: GraphQLClient) -> None:
    page = gql.data("{ products { totalCount nodes { id } pageInfo { hasNextPage } } }")["products"]
    assert [n["id"] for n in page["nodes"]] == [str(i) for i in sorted(DATA.products)[:20]]
    assert page["totalCount"] == len(DATA.products)
    assert page["pageInfo"]["hasNextPage"] is True


def test_products_of_a_category_page_through_with_cursors(gql: GraphQLClient) -> None:
    """Every product of the category exactly once, ascending, with positional cursors."""
    query = """query Page($c: String, $first: Int, $after: String) {
      products(category: $c, first: $first, after: $after) {
        totalCount
        nodes { id category }
        edges { cursor node { id } }
        pageInfo { hasNextPage endCursor }
      } }"""
    expected = sorted(DATA.product_ids_by_category[CATEGORY])
    size = 7
    assert len(expected) > 2 * size
    seen: list[int] = []
    cursors: list[str] = []
    after: str | None = None
    while True:
        page = gql.data(query, {"c": CATEGORY, "first": size, "after": after})["products"]
        assert page["totalCount"] == len(expected)
        assert {n["category"] for n in page["nodes"]} <= {CATEGORY}
        assert [e["node"]["id"] for e in page["edges"]] == [n["id"] for n in page["nodes"]]
        seen += [int(n["id"]) for n in page["nodes"]]
        cursors += [e["cursor"] for e in page["edges"]]
        info = page["pageInfo"]
        assert info["hasNextPage"] is (len(seen) < len(expected))
        assert info["endCursor"] == page["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            break
        assert len(page["nodes"]) == size
        after = info["endCursor"]
    assert seen == expected  # no duplicates, no gaps, ascending ids
    assert len(set(cursors)) == len(cursors)
    # A cursor names a position: what comes after edge k is the item at k + 1.
    for k in (0, size - 1, size, len(expected) - 2):
        follow = gql.data(query, {"c": CATEGORY, "first": 1, "after": cursors[k]})["products"]
        assert follow["nodes"] == [{"id": str(expected[k + 1]), "category": CATEGORY}]
    last = gql.data(query, {"c": CATEGORY, "first": size, "after": cursors[-1]})["products"]
    assert last["nodes"] == [] and last["pageInfo"]["hasNextPage"] is False


def test_products_first_zero_counts_without_nodes(gql: GraphQLClient) -> None:
    query = """{ products(first: 0) {
      totalCount nodes { id } edges { cursor } pageInfo { hasNextPage endCursor } } }"""
    page = gql.data(query)["products"]
    assert page["nodes"] == [] and page["edges"] == []
    assert page["totalCount"] == len(DATA.products)
    assert page["pageInfo"] == {"hasNextPage": True, "endCursor": None}


def test_products_first_one_thousand_is_allowed(gql: GraphQLClient) -> None:
    page = gql.data("{ products(first: 1000) { nodes { id } pageInfo { hasNextPage } } }")
    nodes = page["products"]["nodes"]
    assert [n["id"] for n in nodes] == [str(i) for i in sorted(DATA.products)]
    assert page["products"]["pageInfo"]["hasNextPage"] is False


def test_products_of_an_unknown_category_are_empty(gql: GraphQLClient) -> None:
    query = """{ products(category: "no-such-category") {
      totalCount nodes { id } pageInfo { hasNextPage endCursor } } }"""
    page = gql.data(query)["products"]
    assert page == {
        "totalCount": 0,
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


# order, orders, Order.*, OrderItem.product


def test_order_is_visible_to_its_owner(gql: GraphQLClient) -> None:
    query = ORDER_FIELDS + "query($id: ID!) { order(id: $id) { ...OrderFields } }"
    order = gql.data(query, {"id": str(OWNER_ORDER)}, token=PLAIN)["order"]
    assert order == expected_order(OWNER_ORDER)
    assert order["user"]["id"] == str(OWNER)


def test_any_order_is_visible_with_orders_read(gql: GraphQLClient) -> None:
    query = ORDER_FIELDS + "query($id: ID!) { order(id: $id) { ...OrderFields } }"
    order = gql.data(query, {"id": str(OTHERS_ORDER)}, token=ADMIN)["order"]
    assert order == expected_order(OTHERS_ORDER)
    assert order["total"] == round(order["total"], 2)


def test_someone_elses_order_is_forbidden(gql: GraphQLClient) -> None:
    body = gql.execute(
        "query($id: ID!) { order(id: $id) { id } }", {"id": str(OTHERS_ORDER)}, token=PLAIN
    )
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["order"]
    assert body["data"] == {"order": None}


def test_orders_page_newest_first_through_the_whole_list(gql: GraphQLClient) -> None:
    query = """query($after: String) { orders(first: 500, after: $after) {
      totalCount nodes { id } edges { cursor } pageInfo { hasNextPage endCursor } } }"""
    expected = sorted(DATA.orders, reverse=True)
    seen: list[int] = []
    after: str | None = None
    while True:
        page = gql.data(query, {"after": after}, token=ADMIN)["orders"]
        assert page["totalCount"] == len(expected)
        seen += [int(n["id"]) for n in page["nodes"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected


def test_orders_default_page_with_every_order_field(gql: GraphQLClient) -> None:
    query = ORDER_FIELDS + "{ orders { nodes { ...OrderFields } } }"
    nodes = gql.data(query, token=ADMIN)["orders"]["nodes"]
    assert nodes == [expected_order(oid) for oid in sorted(DATA.orders, reverse=True)[:20]]


def test_orders_without_the_scope_are_forbidden(gql: GraphQLClient) -> None:
    body = gql.execute("{ orders { totalCount } }", token=PLAIN)
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["orders"]
    assert body["data"] is None


# User.orders


def test_user_orders_page_through_as_the_owner(gql: GraphQLClient) -> None:
    query = """query($id: ID!, $after: String) { user(id: $id) {
      orders(first: 2, after: $after) {
        totalCount nodes { id total } pageInfo { hasNextPage endCursor } }
    } }"""
    expected = sorted(DATA.order_ids_by_user[OWNER], reverse=True)
    seen: list[int] = []
    after: str | None = None
    while True:
        page = gql.data(query, {"id": str(OWNER), "after": after}, token=PLAIN)["user"]["orders"]
        assert page["totalCount"] == len(expected)
        for node in page["nodes"]:
            assert node["total"] == total_of(DATA.orders[int(node["id"])])
            seen.append(int(node["id"]))
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected


def test_user_orders_default_to_ten_and_need_ownership_or_scope(gql: GraphQLClient) -> None:
    query = "query($id: ID!) { user(id: $id) { orders { nodes { id } } } }"
    nodes = gql.data(query, {"id": str(OWNER)}, token=ADMIN)["user"]["orders"]["nodes"]
    expected = sorted(DATA.order_ids_by_user[OWNER], reverse=True)[:10]
    assert [int(n["id"]) for n in nodes] == expected
    body = gql.execute(query, {"id": str(OTHER)}, token=PLAIN)
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["user", "orders"]


# bad input


BAD_IDS = ["abc", "0", "-1", "1.5", ""]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("query($id: ID!) { user(id: $id) { id } }", ["user"]),
        ("query($id: ID!) { product(id: $id) { id } }", ["product"]),
        ("query($id: ID!) { order(id: $id) { id } }", ["order"]),
        ('query($id: ID!) { users(ids: ["1", $id]) { id } }', ["users"]),
    ],
)
def test_bad_ids_are_bad_user_input(
    gql: GraphQLClient, query: str, path: list[str], bad: str
) -> None:
    error = only_error(gql.execute(query, {"id": bad}, token=ADMIN))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == path


def test_ids_of_non_ascii_digits_are_bad_user_input(gql: GraphQLClient) -> None:
    """Unicode digits pass `str.isdigit` but are not the integer as a string."""
    for bad in ("\u00b2", "\uff11"):  # superscript two, fullwidth one
        body = gql.execute("query($id: ID!) { user(id: $id) { id } }", {"id": bad})
        error = only_error(body)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (bad, body)
        assert error["path"] == ["user"]


BAD_CURSORS = ["not a cursor!", "bm9wZQ", cursor_of("x:3"), cursor_of("o:-1"), cursor_of("o:")]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("query($c: String) { products(after: $c) { totalCount } }", ["products"]),
        ("query($c: String) { orders(after: $c) { totalCount } }", ["orders"]),
        (
            'query($c: String) { user(id: "1") { orders(after: $c) { totalCount } } }',
            ["user", "orders"],
        ),
    ],
)
def test_bad_cursors_are_bad_user_input(
    gql: GraphQLClient, query: str, path: list[str], cursor: str
) -> None:
    error = only_error(gql.execute(query, {"c": cursor}, token=ADMIN))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == path


@pytest.mark.parametrize("first", [-1, 1001])
@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("query($n: Int) { products(first: $n) { totalCount } }", ["products"]),
        ("query($n: Int) { orders(first: $n) { totalCount } }", ["orders"]),
        (
            'query($n: Int) { user(id: "1") { orders(first: $n) { totalCount } } }',
            ["user", "orders"],
        ),
    ],
)
def test_first_out_of_range_is_bad_user_input(
    gql: GraphQLClient, query: str, path: list[str], first: int
) -> None:
    error = only_error(gql.execute(query, {"n": first}, token=ADMIN))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == path


@pytest.mark.parametrize("first", [-1, 1001])
def test_review_page_size_out_of_range_is_bad_user_input(gql: GraphQLClient, first: int) -> None:
    """`first` is a page size wherever it appears; a negative one is not silently empty."""
    query = "query($id: ID!, $n: Int) { product(id: $id) { reviews(first: $n) { id } } }"
    error = only_error(gql.execute(query, {"id": str(RICH), "n": first}))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["product", "reviews"]
