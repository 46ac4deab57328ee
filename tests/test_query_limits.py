"""Query depth, alias and cost limits (SPEC section 10): the pure measurement, then the gateway
refusing abusive queries before any upstream call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import OperationDefinitionNode, build_schema, parse

from bff.config import LimitsConfig
from bff.errors import BadUserInput, QueryTooComplex, QueryTooDeep
from bff.graphql.executor import GraphQLExecutor, RequestErrors
from bff.limits import QueryLimits
from bff.limits.analysis import MAX_COUNTED
from services import RunningServices
from tests.support import (
    DASHBOARD,
    SHOP_SCHEMA,
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    sign,
)

SCHEMA = SHOP_SCHEMA
DASHBOARD_COST = 301  # orders(first: 20): 1 + 20 * (nodes 1 + 3 + user 3 + items 8)


def check(query: str, variables: dict[str, Any] | None = None, **limits: int) -> int:
    """The cost QueryLimits computes for a validated `query` (the executor validates it; its
    field count is lifted so that the analysis itself meets fragment bombs)."""
    prepared = GraphQLExecutor(SCHEMA, max_fields=10**9).prepare(query)
    operation = GraphQLExecutor.operation(prepared, None)
    checker = QueryLimits(SCHEMA, LimitsConfig(**limits))
    return checker.check(prepared.shapes, prepared.document, operation, variables)


def nested(depth: int) -> str:
    """`{ product { reviews { product { reviews ... } } } }` with `depth` levels of fields."""
    fields = ["product(id: 1)"] + ["reviews", "product"] * depth
    opening = " { ".join(fields[: depth - 1])
    return "{ " + opening + " { id }" + " }" * (depth - 1) + " }"


# --- the measurement --------------------------------------------------------------------------


def test_the_dashboard_costs_what_the_spec_rule_says() -> None:
    assert check(DASHBOARD, {"first": 20}) == DASHBOARD_COST
    assert check(DASHBOARD) == DASHBOARD_COST  # `first` absent: the field's default, 20


def test_every_field_costs_one_and_first_multiplies_what_is_below() -> None:
    assert check("{ __typename }") == 1
    assert check("{ product(id: 1) { id name } }") == 3
    # products(first: 3): 1 + 3 * (nodes 1 + id 1 + reviews(first: 2) (1 + 2 * 1))
    assert check("{ products(first: 3) { nodes { id reviews(first: 2) { id } } } }") == 16
    # reviews' default `first` is 5
    assert check("{ product(id: 1) { reviews { id } } }") == 1 + 1 + 5


def test_depth_counts_nesting_through_fragments_and_inline_fragments() -> None:
    query = """query { product(id: 1) { ...P } }
      fragment P on Product { reviews { ... on Review { author { ...U } } } }
      fragment U on User { orders { nodes { id } } }"""
    # product 1, reviews 2, author 3, orders 4, nodes 5, id 6
    check(query, max_depth=6)
    with pytest.raises(QueryTooDeep) as refused:
        check(query, max_depth=5)
    assert refused.value.extensions == {"code": "QUERY_TOO_DEEP", "depth": 6, "maxDepth": 5}


def test_a_root_field_is_depth_one() -> None:
    check("{ __typename }", max_depth=1)
    check("{ product(id: 1) { id } }", max_depth=2)
    with pytest.raises(QueryTooDeep):
        check("{ product(id: 1) { id } }", max_depth=1)


def test_aliases_are_counted_with_fragments_expanded() -> None:
    query = """{ product(id: 1) { ...A ...A ...A } }
      fragment A on Product { a: id b: name }"""
    check(query, max_aliases=6)
    with pytest.raises(QueryTooComplex) as refused:
        check(query, max_aliases=5)
    assert refused.value.extensions["aliases"] == 6
    assert refused.value.extensions["maxAliases"] == 5


def test_checks_run_depth_then_aliases_then_cost_and_report_only_the_first() -> None:
    query = "{ a: products(first: 100) { nodes { reviews { product { id } } } } }"
    with pytest.raises(QueryTooDeep):
        check(query, max_depth=3, max_aliases=0, max_cost=10)
    with pytest.raises(QueryTooComplex) as aliases:
        check(query, max_aliases=0, max_cost=10)
    assert "aliases" in aliases.value.extensions
    with pytest.raises(QueryTooComplex) as cost:
        check(query, max_cost=10)
    assert cost.value.extensions == {"code": "QUERY_TOO_COMPLEX", "cost": 1201, "maxCost": 10}


def test_a_fragment_bomb_is_measured_in_full_without_being_expanded() -> None:
    # Each level spreads the one below 4 times: 4^12 = 16.7 million `id` fields if expanded.
    levels = 12
    fragments = [f"fragment F{levels} on Product {{ id }}"]
    for n in range(levels - 1, -1, -1):
        fragments.append(
            f"fragment F{n} on Product {{ ...F{n + 1} ...F{n + 1} ...F{n + 1} ...F{n + 1} }}"
        )
    query = "{ product(id: 1) { ...F0 } } " + " ".join(fragments)
    with pytest.raises(QueryTooComplex) as refused:
        check(query)
    assert refused.value.extensions["cost"] == 1 + 4**levels


def test_variables_feeding_first_change_the_cost_and_each_value_is_cached() -> None:
    executor = GraphQLExecutor(SCHEMA)
    prepared = executor.prepare(DASHBOARD)
    operation = executor.operation(prepared, None)
    checker = QueryLimits(SCHEMA, LimitsConfig())
    assert checker.check(prepared.shapes, prepared.document, operation, {"first": 1}) == 16
    assert checker.check(prepared.shapes, prepared.document, operation, {"first": 2}) == 31
    shape = prepared.shapes[operation.name.value if operation.name else None]
    assert shape.first_variables == ("first",)
    assert shape.costs == {(1,): 16, (2,): 31}
    with pytest.raises(QueryTooComplex):
        checker.check(prepared.shapes, prepared.document, operation, {"first": 10**9})


def test_a_variable_default_in_the_operation_counts() -> None:
    query = "query($n: Int = 7) { products(first: $n) { nodes { id } } }"
    assert check(query) == 1 + 7 * 2
    assert check(query, {"n": 3}) == 1 + 3 * 2
    assert check(query, {"n": None}) == 1 + 20 * 2  # null: the field's own default


def test_introspection_is_not_counted() -> None:
    from graphql import get_introspection_query

    assert check(get_introspection_query(), max_depth=2) == 0


def test_a_fragment_cycle_is_refused_by_validation_before_analysis() -> None:
    query = "{ product(id: 1) { ...A } } fragment A on Product { reviews { product { ...A } } }"
    with pytest.raises(RequestErrors) as refused:
        GraphQLExecutor(SCHEMA).prepare(query)
    assert "cycle" in refused.value.errors[0].message.lower() or "itself" in str(
        refused.value.errors[0].message
    )


def test_analysis_itself_refuses_a_cycle_rather_than_hang() -> None:
    document = parse(
        "{ product(id: 1) { ...A } } fragment A on Product { reviews { product { ...A } } }"
    )
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    with pytest.raises(QueryTooDeep):
        QueryLimits(SCHEMA, LimitsConfig()).check({}, document, operation, None)


def test_variables_larger_than_the_cap_are_bad_input() -> None:
    checker = QueryLimits(SCHEMA, LimitsConfig(max_variables=100))
    checker.check_variables({"ids": ["1"] * 10})
    with pytest.raises(BadUserInput):
        checker.check_variables({"ids": ["1"] * 100})


# --- the gateway --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict(shop: RunningServices) -> Iterator[GraphQLClient]:
    settings = gateway_settings(
        shop.urls,
        limits={"max_depth": 6, "max_aliases": 4, "max_cost": 1000, "max_tokens": 400,
                "max_variables": 2000},
    )  # fmt: skip
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        yield client
        client.close()


ABUSIVE = {
    "deep through fragments": (
        "{ product(id: 1) { ...A } } fragment A on Product { reviews { author { ...B } } }"
        " fragment B on User { orders { nodes { items { product { id } } } } }",
        "QUERY_TOO_DEEP",
    ),
    "alias bomb": (
        "{ a: product(id: 1) { id } b: product(id: 2) { id } c: product(id: 3) { id }"
        " d: product(id: 4) { id } e: product(id: 5) { id } }",
        "QUERY_TOO_COMPLEX",
    ),
    "huge first": ("{ products(first: 100000) { nodes { id name } } }", "QUERY_TOO_COMPLEX"),
    "fragment cycle": (
        "{ product(id: 1) { ...A } } fragment A on Product { reviews { product { ...A } } }",
        "BAD_USER_INPUT",
    ),
    "too many tokens": ("{ " + "__typename " * 500 + "}", "BAD_USER_INPUT"),
}


@pytest.mark.parametrize("name", sorted(ABUSIVE))
def test_abusive_queries_are_refused_without_any_upstream_call(
    strict: GraphQLClient, calls: UpstreamCalls, name: str
) -> None:
    query, code = ABUSIVE[name]
    response = strict.post(query, token=sign())
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code
    assert "data" not in response.json()
    assert calls.total() == 0


def test_huge_first_in_variables_is_refused_without_any_upstream_call(
    strict: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = strict.post(DASHBOARD, {"first": 1_000_000}, token=sign())
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": 1 + 1_000_000 * 15,
        "maxCost": 1000,
    }
    assert calls.total() == 0
    # the same document with a small `first` runs and reports its cost
    body = strict.execute(DASHBOARD, {"first": 2}, token=sign())
    assert body["extensions"] == {"cost": 31}
    assert len(body["data"]["orders"]["nodes"]) == 2
    assert calls.total() == 5


def test_rejections_are_200_under_legacy_application_json(strict: GraphQLClient) -> None:
    query, _ = ABUSIVE["huge first"]
    response = strict.post(query, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_oversized_variables_are_refused(strict: GraphQLClient, calls: UpstreamCalls) -> None:
    response = strict.post("query($ids: [ID!]!) { users(ids: $ids) { id } }", {"ids": ["1"] * 1000})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert calls.total() == 0


def test_accepted_queries_report_their_cost(gql: GraphQLClient) -> None:
    body = gql.execute(DASHBOARD, {"first": 20}, token=sign())
    assert body["extensions"] == {"cost": DASHBOARD_COST}
    assert "errors" not in body


def test_limits_can_be_turned_off(shop: RunningServices) -> None:
    settings = gateway_settings(shop.urls, limits={"enabled": False, "max_depth": 1})
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        body = client.execute("{ product(id: 1) { reviews { id } } }")
        client.close()
    assert "extensions" not in body
    assert "errors" not in body


# --- variables are coerced before the cost reads them ------------------------------------------

FIRST = "query($n: Int) { products(first: $n) { nodes { id } } }"


@pytest.mark.parametrize(
    "value",
    [1e40, 2**31, -(2**31) - 1, 10**40, 1.5, "12", True, [3], {"n": 3}],
    ids=["1e40", "2^31", "-2^31-1", "10^40", "1.5", "string", "bool", "list", "object"],
)
def test_a_variable_its_scalar_cannot_hold_is_bad_input_before_the_cost(value: Any) -> None:
    with pytest.raises(BadUserInput) as refused:
        check(FIRST, {"n": value})
    assert "Int cannot represent" in refused.value.message
    assert "$n" in refused.value.message


def test_the_largest_ints_are_counts_and_the_cost_saturates() -> None:
    assert check(FIRST, {"n": 2**31 - 1}, max_cost=10**18) == 1 + (2**31 - 1) * 2
    assert check(FIRST, {"n": 3.0}) == 1 + 3 * 2  # an integral float is an Int
    # three nested connections of 2^31 - 1 would be 2^93: past what JSON keeps exactly
    query = """query($n: Int) { products(first: $n) { nodes { reviews(first: $n) {
        author { orders(first: $n) { nodes { id } } } } } } }"""
    with pytest.raises(QueryTooComplex) as refused:
        check(query, {"n": 2**31 - 1})
    assert refused.value.extensions["cost"] == MAX_COUNTED == 2**53 - 1


def test_a_bad_variable_is_refused_on_a_cached_shape_too() -> None:
    executor = GraphQLExecutor(SCHEMA)
    prepared = executor.prepare(FIRST)
    operation = executor.operation(prepared, None)
    checker = QueryLimits(SCHEMA, LimitsConfig())
    assert checker.check(prepared.shapes, prepared.document, operation, {"n": 2}) == 5
    with pytest.raises(BadUserInput):
        checker.check(prepared.shapes, prepared.document, operation, {"n": 1e40})
    assert prepared.shapes[None].costs == {(2,): 5}


# --- list arguments count as lists ------------------------------------------------------------

USERS = "query($ids: [ID!]!) { users(ids: $ids) { id orders(first: 20) { nodes { id } } } }"
PER_USER = 1 + 1 + 20 * 2  # id, orders (1 + 20 * (nodes 1 + id 1))


def test_a_list_of_keys_multiplies_what_is_below_it() -> None:
    assert check(USERS, {"ids": ["1"] * 100}) == 1 + 100 * PER_USER
    assert check(USERS, {"ids": ["1", "2"]}) == 1 + 2 * PER_USER
    assert check(USERS, {"ids": []}) == 1
    assert check(USERS, {"ids": "7"}) == 1 + PER_USER  # one id is a list of one
    literal = "{ users(ids: [1, 2, 3]) { id orders(first: 20) { nodes { id } } } }"
    assert check(literal) == 1 + 3 * PER_USER
    assert check('{ users(ids: "1") { id } }') == 1 + 1


def test_each_list_length_is_its_own_cached_cost() -> None:
    executor = GraphQLExecutor(SCHEMA)
    prepared = executor.prepare(USERS)
    operation = executor.operation(prepared, None)
    checker = QueryLimits(SCHEMA, LimitsConfig())
    for ids in (["1"], ["1", "2", "3"], ["9", "8", "7"]):
        checker.check(prepared.shapes, prepared.document, operation, {"ids": ids})
    assert prepared.shapes[None].first_variables == ("ids",)
    assert prepared.shapes[None].costs == {(1,): 1 + PER_USER, (3,): 1 + 3 * PER_USER}
    with pytest.raises(QueryTooComplex) as refused:
        checker.check(prepared.shapes, prepared.document, operation, {"ids": ["1"] * 200})
    assert refused.value.extensions["cost"] == 1 + 200 * PER_USER
    with pytest.raises(BadUserInput):  # coerced first: a list of the wrong items
        checker.check(prepared.shapes, prepared.document, operation, {"ids": [{"id": 1}]})


BATCHES = build_schema("""
    type Query {
      items(keys: [ID!] = ["a", "b", "c"]): [Item]
      item(keys: [ID!]): Item
      page(first: Int = 2, keys: [ID!]): [Item!]!
      total(keys: [ID!]): Int
    }
    type Item { id: ID! parts(ids: [ID!]!): [Item!]! }
""")


def batch_cost(query: str, variables: dict[str, Any] | None = None) -> int:
    prepared = GraphQLExecutor(BATCHES).prepare(query)
    operation = GraphQLExecutor.operation(prepared, None)
    checker = QueryLimits(BATCHES, LimitsConfig(max_cost=10**9))
    return checker.check(prepared.shapes, prepared.document, operation, variables)


def test_list_arguments_of_list_fields_count_and_nest() -> None:
    assert batch_cost("{ items { id } }") == 1 + 3  # the argument's default list
    assert batch_cost('{ items(keys: ["a"]) { id } }') == 1 + 1
    assert batch_cost("{ items(keys: null) { id } }") == 1  # no keys, no items
    # nested batches multiply as nested connections do
    query = '{ items(keys: ["a", "b"]) { parts(ids: ["1", "2", "3"]) { id } } }'
    assert batch_cost(query) == 1 + 2 * (1 + 3 * 1)
    # `first` and a list: the larger counts
    assert batch_cost('{ page(keys: ["a", "b", "c", "d"]) { id } }') == 1 + 4
    assert batch_cost('{ page(first: 9, keys: ["a"]) { id } }') == 1 + 9


def test_list_arguments_of_fields_that_return_one_value_do_not_multiply() -> None:
    assert batch_cost('{ item(keys: ["a", "b", "c"]) { id } }') == 1 + 1
    assert batch_cost('{ total(keys: ["a", "b", "c"]) }') == 1


def test_the_gateway_costs_a_batch_of_users_by_its_length(
    strict: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = strict.post(USERS, {"ids": [str(i) for i in range(1, 41)]}, token=sign())
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": 1 + 40 * PER_USER,
        "maxCost": 1000,
    }
    assert calls.total() == 0
    body = strict.execute(USERS, {"ids": ["1", "2"]}, token=sign("1", ("admin",)))
    assert body["extensions"] == {"cost": 1 + 2 * PER_USER}


@pytest.mark.parametrize("value", [10**40, 2**31, 1e300, -(2**63)])
@pytest.mark.parametrize("limits_on", [True, False])
def test_the_gateway_answers_an_out_of_range_int_with_bad_user_input(
    shop: RunningServices, calls: UpstreamCalls, value: Any, limits_on: bool
) -> None:
    settings = gateway_settings(shop.urls, limits={"enabled": limits_on})
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        for reference in (DASHBOARD, INTROSPECTED):  # the fast path, and graphql-core's
            response = client.post(reference, {"first": value}, token=sign())
            assert response.status_code == 400, response.text
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert "Int cannot represent" in error["message"]
        literal = client.post(f"{{ products(first: {value:.0f}) {{ totalCount }} }}")
        client.close()
    assert literal.status_code == 400
    assert literal.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert calls.total() == 0


# introspection sends an operation to graphql-core's own execute (the fast path declines it)
INTROSPECTED = (
    'query($first: Int) { __type(name: "Query") { name } orders(first: $first) { totalCount } }'
)
