"""The execution fast path: the same answers as graphql-core, with fewer steps to them.

Each query runs through `GraphQLExecutor.execute` on the fast path and with `reference=True`
(plain graphql-core), each with a fresh `RequestContext` over real services, and the two
outcomes must be equal: `data` as JSON text (key order counts) and the errors (message, path,
locations, class of the original error, extensions) in any order. Beyond equality: which
operations take the fast path, how each field is resolved, that the Dashboard still makes 5
upstream calls level by level, and the generic engine on a small schema of its own.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any

import pytest
import strawberry
from graphql import (
    ExecutionResult,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
)

from bff.auth import ANONYMOUS, Principal
from bff.config import Settings
from bff.graphql.executor import GraphQLExecutor, RequestErrors
from bff.graphql.fastpath.plan import (
    ATTR,
    BATCH,
    RESOLVE,
    Fallback,
    FieldPlan,
    OperationPlan,
)
from bff.graphql.fastpath.shapes import ENUM, shape_of
from bff.upstream import Upstreams
from services import RunningServices, ServiceOptions, ServiceSpec
from tests.support import (
    DASHBOARD,
    SHOP,
    SHOP_SCHEMA,
    UpstreamCalls,
    gateway_settings,
    running_shop,
)

EXECUTOR = GraphQLExecutor(SHOP_SCHEMA)
USER_1 = Principal(sub="1", scopes=frozenset({"orders:read", "users:read:email"}))
PLAIN_USER = Principal(sub="2")
PRINCIPALS = {"anonymous": ANONYMOUS, "user 1 with scopes": USER_1, "plain user 2": PLAIN_USER}
Outcome = tuple[str, tuple[str, ...]]


def outcome(result: ExecutionResult | None, errors: list[GraphQLError]) -> Outcome:
    def describe(e: GraphQLError) -> str:
        original = None if e.original_error is None else type(e.original_error).__name__
        locations = [[loc.line, loc.column] for loc in e.locations or ()]
        error = {"m": e.message, "p": e.path, "l": locations, "o": original, "x": e.extensions}
        return json.dumps(error, sort_keys=True, default=repr)

    data = "request error" if result is None else json.dumps(result.data)
    return data, tuple(sorted(describe(e) for e in errors))


async def execute(
    executor: GraphQLExecutor, pools: Any, query: str, variables: Any, who: Principal, ref: bool
) -> Outcome:
    try:
        prepared = executor.prepare(query)
        context = SHOP.context(who, pools)
        result = await executor.execute(
            prepared, operation_name=None, variables=variables, context=context, reference=ref
        )
    except RequestErrors as error:
        return outcome(None, error.errors)
    return outcome(result, list(result.errors or ()))


def both(
    settings: Settings,
    query: str,
    variables: Mapping[str, Any] | None = None,
    who: Principal = USER_1,
) -> tuple[Outcome, Outcome]:
    """(fast path, graphql-core) for `query`."""

    async def main() -> tuple[Outcome, Outcome]:
        pools = Upstreams.from_settings(settings)
        try:
            fast = await execute(EXECUTOR, pools, query, variables, who, False)
            return fast, await execute(EXECUTOR, pools, query, variables, who, True)
        finally:
            await pools.aclose()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def healthy(shop: RunningServices) -> Settings:
    return gateway_settings(shop.urls)


QUERIES = {
    "dashboard": (DASHBOARD, {"first": 20}),
    "products connection": (
        """{ products(category: "garden", first: 3) { totalCount pageInfo { hasNextPage endCursor }
        edges { cursor node { id name price } } nodes { id } } }""",
        None,
    ),
    "reviews, authors, their orders": (
        """query($id: ID!) { product(id: $id) { name reviewCount averageRating
        reviews(first: 3) { id rating body author { id name email
          orders(first: 2) { totalCount nodes { id total items { quantity } } } } } } }""",
        {"id": "3"},
    ),
    "aliases, fragments, __typename": (
        """{ __typename a: product(id: "1") { ...P kind: __typename }
        b: product(id: "2") { ... on Product { id stock } ...P }
        missing: product(id: "99999") { id } }
        fragment P on Product { id title: name reviews(first: 1) { __typename id } }""",
        None,
    ),
    "variables with defaults and explicit nulls": (
        """query($first: Int = 2, $after: String, $c: String = "toys") {
        a: products(first: $first, after: $after, category: $c) { nodes { id category } }
        b: products(first: null) { totalCount } }""",
        {"after": None},
    ),
    "users with duplicates and missing ids": (
        '{ users(ids: ["3", "3", "99999", "1"]) { id } }',
        None,
    ),
    "a bad page size nulls the product": (
        '{ product(id: "3") { name reviews(first: -1) { id } } other: product(id: "4") { name } }',
        None,
    ),
    "permissions inside lists": (
        """{ orders(first: 3) { nodes { id user { id email orders(first: 1) { totalCount } } } }
        me { id email } }""",
        None,
    ),
    "a variable that does not coerce": (
        "query($f: Int) { products(first: $f) { totalCount } }",
        {"f": "x"},
    ),
}


@pytest.mark.parametrize("who", list(PRINCIPALS))
@pytest.mark.parametrize("name", list(QUERIES))
def test_fast_path_answers_like_graphql_core(healthy: Settings, name: str, who: str) -> None:
    query, variables = QUERIES[name]
    fast, reference = both(healthy, query, variables, PRINCIPALS[who])
    assert fast == reference


def codes_and_paths(errors: tuple[str, ...]) -> list[tuple[str, list[Any]]]:
    return sorted((json.loads(e)["x"]["code"], json.loads(e)["p"]) for e in errors)


def test_permission_errors_for_anonymous_and_plain_users(healthy: Settings) -> None:
    query = '{ me { id } users(ids: ["2", "3"]) { id email } }'
    fast, reference = both(healthy, query, who=ANONYMOUS)
    assert fast == reference
    assert json.loads(fast[0]) == {
        "me": None,
        "users": [{"id": "2", "email": None}, {"id": "3", "email": None}],
    }
    assert codes_and_paths(fast[1]) == [
        ("UNAUTHENTICATED", ["me"]),
        ("UNAUTHENTICATED", ["users", 0, "email"]),
        ("UNAUTHENTICATED", ["users", 1, "email"]),
    ]
    fast, reference = both(healthy, query, who=PLAIN_USER)
    assert fast == reference
    users = json.loads(fast[0])["users"]
    assert users[0]["email"] is not None and users[1]["email"] is None
    assert codes_and_paths(fast[1]) == [("FORBIDDEN", ["users", 1, "email"])]
    fast, reference = both(healthy, "{ orders(first: 2) { totalCount } }", who=PLAIN_USER)
    assert fast == reference
    assert fast[0] == "null"  # `orders` is non-null: refusing it takes all of `data`
    assert codes_and_paths(fast[1]) == [("FORBIDDEN", ["orders"])]


@pytest.fixture(scope="module")
def reviews_down() -> Iterator[Settings]:
    failing = ServiceSpec("reviews", ServiceOptions(failure_rate=1.0, fail_status=503))
    with running_shop(failing) as shop:
        yield gateway_settings(shop.urls, {"timeout": {"connect": "200ms", "total": "300ms"}})


def test_a_failing_non_null_field_nulls_the_nearest_nullable_parent(reviews_down: Settings) -> None:
    query = """{ order(id: "1") { id items { quantity product { name reviewCount averageRating } } }
    product(id: "2") { name stock } }"""
    fast, reference = both(reviews_down, query)
    assert fast == reference
    data = json.loads(fast[0])
    assert data["product"]["name"] and data["product"]["stock"] is not None
    items = data["order"]["items"]
    assert items and all(item["product"] is None and item["quantity"] for item in items)
    errors = codes_and_paths(fast[1])
    assert {code for code, _ in errors} == {"UPSTREAM_UNAVAILABLE"}
    # `reviewCount` nulls each product; `averageRating`, fed by the same failed batch at the
    # same moment, is still reported (as graphql-core does)
    assert sorted(path for _, path in errors) == sorted(
        ["order", "items", i, "product", field]
        for i in range(len(items))
        for field in ("averageRating", "reviewCount")
    )


def test_a_failing_non_null_field_can_null_all_data(reviews_down: Settings) -> None:
    fast, reference = both(reviews_down, "{ products(first: 3) { nodes { id reviewCount } } }")
    assert fast == reference
    assert fast[0] == "null"
    assert codes_and_paths(fast[1]) == [
        ("UPSTREAM_UNAVAILABLE", ["products", "nodes", 0, "reviewCount"])
    ]


def test_a_page_of_reviews_is_ordered_by_id_whatever_order_they_were_loaded_in(
    healthy: Settings,
) -> None:
    """The loader keeps the service's order (averages and counts need none): the page sorts."""
    query = '{ product(id: "3") { reviewCount averageRating reviews(first: 3) { id } } }'

    async def main() -> list[Outcome]:
        pools = Upstreams.from_settings(healthy)
        try:
            runs = []
            for reference in (False, True):
                context = SHOP.context(USER_1, pools)
                found = await context.loaders.reviews.load_settled([3])
                assert isinstance(found[0], tuple) and len(found[0]) > 3
                context.loaders.reviews.clear(3).prime(3, found[0][::-1])  # newest first
                result = await EXECUTOR.execute(
                    EXECUTOR.prepare(query), operation_name=None, variables=None,
                    context=context, reference=reference,
                )  # fmt: skip
                runs.append(outcome(result, list(result.errors or ())))
            return runs
        finally:
            await pools.aclose()

    fast, reference = asyncio.run(main())
    assert fast == reference and not fast[1]
    ids = [int(r["id"]) for r in json.loads(fast[0])["product"]["reviews"]]
    assert len(ids) == 3 and ids == sorted(ids)


# -- which operations take the fast path, and how each field is resolved


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { queryType { name } } }",
        '{ __type(name: "User") { name } }',
        'query A { product(id: "1") { id } } query B { product(id: "2") { id } }',
    ],
)
def test_unusual_operations_are_left_to_graphql_core(healthy: Settings, query: str) -> None:
    prepared = EXECUTOR.prepare(query)
    fallback = EXECUTOR.plan(prepared, None)
    assert isinstance(fallback, Fallback)
    assert prepared.plans == {None: fallback}  # decided once
    fast, reference = both(healthy, query, {"yes": True})
    assert fast == reference


SWITCHED = """query Switched($withReviews: Boolean!, $lean: Boolean = false) {
  product(id: "3") {
    id name @skip(if: $lean)
    ...Reviews @include(if: $withReviews)
    ... on Product @skip(if: true) { price }
    stock @include(if: false) category @include(if: true)
  }
  products(first: 2) @skip(if: $lean) {
    nodes { id ... @include(if: $withReviews) { reviewCount } }
  }
}
fragment Reviews on Product { reviews(first: 2) { id author { id @skip(if: $lean) } } }"""


@pytest.mark.parametrize("with_reviews", [True, False])
@pytest.mark.parametrize("lean", [True, False, None])
def test_skip_and_include_stay_on_the_fast_path(
    healthy: Settings, with_reviews: bool, lean: bool | None
) -> None:
    executor = GraphQLExecutor(SHOP_SCHEMA)
    prepared = executor.prepare(SWITCHED)
    plan = executor.plan(prepared, None)
    assert isinstance(plan, OperationPlan)
    assert plan.switches == ("lean", "withReviews")
    assert len(plan.roots) == 4  # one root selection per combination of the switches
    variables: dict[str, Any] = {"withReviews": with_reviews}
    if lean is not None:
        variables["lean"] = lean
    fast, reference = both(healthy, SWITCHED, variables)
    assert fast == reference
    data = json.loads(fast[0])
    product = data["product"]
    assert ("name" in product) is not bool(lean)
    assert ("reviews" in product) is with_reviews
    assert "price" not in product and "stock" not in product and product["category"]
    assert ("products" in data) is not bool(lean)


def run_on(executor: GraphQLExecutor, settings: Settings, query: str, variables: Any) -> Outcome:
    async def main() -> Outcome:
        pools = Upstreams.from_settings(settings)
        try:
            return await execute(executor, pools, query, variables, USER_1, False)
        finally:
            await pools.aclose()

    return asyncio.run(main())


def test_fallbacks_are_counted_by_reason_and_logged_once(
    healthy: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    executor = GraphQLExecutor(SHOP_SCHEMA)
    caplog.set_level("DEBUG", logger="bff.graphql")
    for _ in range(3):
        run_on(executor, healthy, "query Intro { __schema { queryType { name } } }", None)
    run_on(executor, healthy, SWITCHED, {"withReviews": True})
    # a null switch: graphql-core judges it (and refuses it), counted as such
    run_on(executor, healthy, SWITCHED, {"withReviews": True, "lean": None})
    assert executor.stats.fast == 1
    assert executor.stats.fallbacks == {"introspection": 3, "null @skip/@include variable": 1}
    assert executor.stats.fallback_total == 4
    logged = [r.getMessage() for r in caplog.records if r.name == "bff.graphql"]
    assert logged == ["operation Intro runs on graphql-core: introspection"]


NESTED_ORDERS = "{ orders(first: 5) { nodes { id user { orders(first: 5) { nodes { id } } } } } }"


@pytest.mark.parametrize("reference", [False, True])
def test_the_response_ceiling_answers_one_error_on_both_paths(
    healthy: Settings, reference: bool
) -> None:
    small = GraphQLExecutor(SHOP_SCHEMA, max_result_values=40)

    async def main() -> Outcome:
        pools = Upstreams.from_settings(healthy)
        try:
            return await execute(small, pools, NESTED_ORDERS, None, USER_1, reference)
        finally:
            await pools.aclose()

    data, errors = asyncio.run(main())
    assert data == "request error"
    (error,) = (json.loads(e) for e in errors)
    assert error["o"] == "ResponseTooLarge"
    assert error["x"] == {"code": "QUERY_TOO_COMPLEX"}
    assert "Response limit exceeded" in error["m"] and "40 values" in error["m"]
    # under the ceiling the same query is answered in full, alike on both paths
    fast, ref = both(healthy, NESTED_ORDERS)
    assert fast == ref and json.loads(fast[0])["orders"]["nodes"]


def kinds(fields: list[FieldPlan], into: dict[str, int]) -> dict[str, int]:
    for field in fields:
        into[f"{field.parent_type.name}.{field.key}"] = field.kind
        inner = field.shape
        while inner is not None and inner.item is not None:
            inner = inner.item
        if inner is not None and inner.selection is not None:
            kinds(inner.selection.fields, into)
    return into


def test_the_dashboard_is_planned_once_with_a_form_per_field() -> None:
    prepared = EXECUTOR.prepare(DASHBOARD + " ")
    plan = EXECUTOR.plan(prepared, None)
    assert isinstance(plan, OperationPlan) and EXECUTOR.plan(prepared, None) is plan
    assert kinds(plan.root.fields, {}) == {
        "Query.orders": RESOLVE,  # strawberry's resolver: arguments, then `Requires`
        "OrderConnection.nodes": ATTR,
        "Order.id": ATTR,
        "Order.status": ATTR,
        "Order.total": ATTR,
        "Order.user": BATCH,
        "User.id": ATTR,
        "User.name": ATTR,
        "Order.items": ATTR,
        "OrderItem.quantity": ATTR,
        "OrderItem.product": BATCH,
        "Product.id": ATTR,
        "Product.name": ATTR,
        "Product.price": ATTR,
        "Product.stock": BATCH,
        "Product.averageRating": BATCH,
    }
    emails = EXECUTOR.plan(EXECUTOR.prepare("{ me { email __typename } }"), None)
    assert isinstance(emails, OperationPlan)
    assert kinds(emails.root.fields, {}) == {
        "Query.me": RESOLVE,
        "User.email": BATCH,  # with its `Requires` check run per user
    }
    me = emails.root.fields[0].shape
    assert me is not None and me.selection is not None
    assert me.selection.template == {"email": None, "__typename": "User"}  # filled in once


# -- batching and levels


def test_the_dashboard_makes_five_upstream_calls(healthy: Settings, calls: UpstreamCalls) -> None:
    asyncio.run(dashboard(healthy))
    assert calls.by_service() == {
        "orders": 1, "users": 1, "catalog": 1, "inventory": 1, "reviews": 1,
    }  # fmt: skip


async def dashboard(
    settings: Settings, spans: dict[str, tuple[float, float]] | None = None
) -> None:
    pools = Upstreams.from_settings(settings)
    try:
        context = SHOP.context(USER_1, pools)
        if spans is not None:
            for name in ("users", "products", "stock", "reviews"):
                timed(getattr(context.loaders, name), name, spans)
        prepared = EXECUTOR.prepare(DASHBOARD)
        result = await EXECUTOR.execute(
            prepared, operation_name=None, variables={"first": 10}, context=context
        )
        assert result.errors is None and result.data is not None
    finally:
        await pools.aclose()


def timed(loader: Any, name: str, spans: dict[str, tuple[float, float]]) -> None:
    fetch = loader.fetch

    async def timed_fetch(keys: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await fetch(keys)
        finally:
            spans[name] = (started, time.perf_counter())

    loader.fetch = timed_fetch


def test_each_level_starts_as_soon_as_its_parents_are_in() -> None:
    """Users and catalog are both children of the orders, so they are fetched together;
    inventory and reviews wait for the products only: three levels, not four."""
    slow = ServiceOptions(latency=0.05)
    with running_shop(*(ServiceSpec(n, slow) for n in ("users", "catalog", "orders"))) as shop:
        spans: dict[str, tuple[float, float]] = {}
        asyncio.run(dashboard(gateway_settings(shop.urls), spans))
    users, products, stock, reviews = (spans[n] for n in ("users", "products", "stock", "reviews"))
    assert max(users[0], products[0]) < min(users[1], products[1])  # they overlap
    assert min(stock[0], reviews[0]) >= products[1]  # the next level, after the products
    assert max(stock[0], reviews[0]) < min(stock[1], reviews[1])


# -- the engine on a schema of its own: what ours never does, done as graphql-core does it


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Thing:
    id: strawberry.ID
    name: str | None
    color: Color
    tags: list[str]
    grid: list[list[int]] | None
    weight: float | None = 1.0  # attributes read and checked in one pass; odd ones below
    size: int | None = 3
    code: int = 0

    @strawberry.field
    def label(self) -> str:  # a synchronous resolver, resolved per item
        return f"{self.name}!"

    @strawberry.field
    async def twin(self) -> Thing | None:  # an asynchronous one, one level down
        await asyncio.sleep(0)
        return self

    @strawberry.field
    def big(self) -> int | None:  # does not fit an Int: a nullable field error
        return 2**40 if self.id in ("1", "3") else 7

    @strawberry.field
    def score(self) -> float | None:  # inf and nan are no Float: nullable field errors
        return {"1": 1.5, "2": math.inf, "3": math.nan}[self.id]

    @strawberry.field
    def whole(self) -> float:  # an int where a Float is due: serialized as a float
        return int(self.id)

    @strawberry.field
    def ref(self) -> strawberry.ID:  # an ID from an int: its decimal string
        return int(self.id)  # type: ignore[return-value]

    @strawberry.field
    def huge(self) -> strawberry.ID | None:  # an int past str()'s digit limit: an error
        return 10**5000 if self.id == "2" else int(self.id)  # type: ignore[return-value]

    @strawberry.field
    def flag(self) -> int:  # a bool where an Int is due
        return self.id == "2"

    @strawberry.field
    def broken(self) -> str:  # a non-null field error: its object is nulled
        if self.id == "2":
            raise ValueError(f"broken {self.id}")
        return "fine"

    @strawberry.field
    def maybe(self) -> list[str]:  # a null item in a list of non-null items
        return ["a", None] if self.id == "2" else ["a"]  # type: ignore[list-item]


def things() -> list[Thing]:
    grids = [[[1, 2], [3]], None, []]
    made = [Thing(id=strawberry.ID(str(i)), name=f"t{i}", color=Color.BLUE if i % 2 else Color.RED,
                  tags=["x"] * i, grid=grids[i - 1]) for i in (1, 2, 3)]  # fmt: skip
    made[1].weight, made[2].size, made[1].code = math.inf, 2**40, 2**35  # no Float, no Ints
    made[2].name = None
    return made


@strawberry.type
class ToyQuery:
    @strawberry.field
    def things(self) -> list[Thing | None]:
        return [*things()[:2], None, things()[2]]

    @strawberry.field
    async def strict(self) -> list[Thing]:
        return things()

    @strawberry.field
    def nothing(self) -> Thing:
        return None  # type: ignore[return-value]


TOY = GraphQLExecutor(strawberry.Schema(query=ToyQuery)._schema)

TOY_QUERIES = [
    "{ things { id name color tags grid label __typename twin { id twin { name color } } } }",
    "{ things { id big } }",
    # scalars completed inline: odd values go through the serializer, as in graphql-core
    "{ things { id score whole ref flag big } }",
    "{ strict { score ref whole } }",
    "{ things { id huge } }",
    "{ things { id name weight size code } }",
    # one loop for a selection's attribute leaves, stopping at an odd value: the rest as before
    "{ things { size label weight id name } }",
    "{ strict { code id } things { name size weight } }",
    "{ strict { name weight size } strict2: strict { id code } }",
    "{ things { id broken } }",
    "{ strict { id broken } }",
    "{ things { id maybe } strict { id } }",
    "{ strict { maybe } }",
    "{ nothing { id } things { id } }",
    # a null that propagates stops the rest of the work of that value, depth first
    "{ things { big broken } }",
    "{ things { broken big } }",
    "{ strict { big broken } }",
    "{ strict { broken big } }",
    "{ strict { id twin { big } broken } }",
    "{ strict { maybe big } }",
    "{ a: things { ...T } b: strict { ... on Thing { label } ...T } } fragment T on Thing { id }",
]


def fast_and_reference(
    executor: GraphQLExecutor, query: str, context: Callable[[], Any] = lambda: None
) -> tuple[Outcome, Outcome]:
    """`query` on the fast path (which must plan it) and on graphql-core, each with a
    `context()` of its own (none by default)."""

    async def main() -> tuple[Outcome, Outcome]:
        prepared = executor.prepare(query)
        assert isinstance(executor.plan(prepared, None), OperationPlan)
        runs = []
        for reference in (False, True):
            result = await executor.execute(
                prepared,
                operation_name=None,
                variables=None,
                context=context(),
                reference=reference,
            )
            runs.append(outcome(result, list(result.errors or ())))
        return runs[0], runs[1]

    return asyncio.run(main())


@pytest.mark.parametrize("query", TOY_QUERIES)
def test_the_engine_answers_like_graphql_core_on_any_schema(query: str) -> None:
    fast, reference = fast_and_reference(TOY, query)
    assert fast == reference


# -- a plain graphql-core enum (generated sources make them): its values looked up inline

STATUS = GraphQLEnumType("Status", {"OPEN": "open", "DONE": "done", "ONE": 1, "NAMED": None})
ROW = GraphQLObjectType("Row", {"status": GraphQLField(STATUS), "strict": GraphQLField(
    GraphQLNonNull(STATUS))})  # fmt: skip
# known values, an unknown one, an unhashable one, a null, a bool hashing like 1, a name
# standing for a null value, an exception (each an error or a null, as graphql-core says)
ROWS = [
    {"status": "open", "strict": "done"},
    {"status": "odd", "strict": "open"},
    {"status": ["open"], "strict": 1},
    {"status": None, "strict": True},
    {"status": "NAMED", "strict": "odd"},
    {"status": 1.0, "strict": None},
]
ENUM_SCHEMA = GraphQLSchema(
    GraphQLObjectType(
        "Query",
        {
            "rows": GraphQLField(GraphQLList(ROW), resolve=lambda *_: ROWS),
            "statuses": GraphQLField(
                GraphQLList(STATUS), resolve=lambda *_: ["done", ValueError("no"), 1, "x"]
            ),
        },
    )
)
ENUMS = GraphQLExecutor(ENUM_SCHEMA)


@pytest.mark.parametrize(
    "query", ["{ rows { status } }", "{ rows { strict } }", "{ rows { status strict } statuses }"]
)
def test_a_plain_enum_is_completed_inline_as_graphql_core_completes_it(query: str) -> None:
    fast, reference = fast_and_reference(ENUMS, query)
    assert fast == reference
    assert "open" not in fast[0]  # the values' names were written, not the values
    assert shape_of(STATUS).scalar == ENUM and shape_of(GraphQLNonNull(STATUS)).inline
