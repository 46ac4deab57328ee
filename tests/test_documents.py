"""Documents that cannot pin the event loop (SPEC section 15, "Documents"): repeated selections
merged before validation, `limits.max_fields` checked before it, the overlap rule on a budget,
and no "Did you mean" with introspection off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from graphql import build_schema, parse, print_ast

from bff.graphql.documents import count_fields, merged
from bff.graphql.executor import GraphQLExecutor, RequestErrors
from schema import schema
from services import RunningServices
from tests.support import GraphQLClient, UpstreamCalls, gateway_settings, running_gateway, sign

SCHEMA = schema._schema
# the documents an attacker sends at five times the default token cap: a deployment that raises
# `limits.max_tokens` still gets bounded work
RAISED = 5000


def merged_text(query: str) -> str:
    return print_ast(merged(parse(query)))


def same_document(query: str, expected: str) -> None:
    assert merged_text(query) == print_ast(parse(expected))


def refused(executor: GraphQLExecutor, query: str) -> list[dict[str, object]]:
    """The errors of a refused document, with their codes as the client sees them."""
    with pytest.raises(RequestErrors) as refusal:
        executor.prepare(query)
    rendered = []
    for error in refusal.value.errors:
        original = error.original_error
        code = getattr(original, "code", "BAD_USER_INPUT")
        extensions = getattr(original, "extensions", {"code": code})
        rendered.append({"message": error.message, "extensions": extensions})
    return rendered


# --- merging ----------------------------------------------------------------------------------


def test_a_repeated_field_is_kept_once() -> None:
    same_document("{ __typename __typename __typename }", "{ __typename }")
    same_document(
        "{ a: product(id: 1) { id } a: product(id: 1) { id } }", "{ a: product(id: 1) { id } }"
    )


def test_repeated_fields_merge_their_selections_at_every_level() -> None:
    same_document(
        "{ product(id: 1) { id reviews { id } } product(id: 1) { name reviews { body id } } }",
        "{ product(id: 1) { id reviews { id body } name } }",
    )


def test_arguments_in_another_order_are_the_same_field() -> None:
    same_document(
        '{ products(first: 2, category: "x") { totalCount }'
        ' products(category: "x", first: 2) { totalCount } }',
        '{ products(first: 2, category: "x") { totalCount } }',
    )


@pytest.mark.parametrize(
    "query",
    [
        "{ product(id: 1) { id } product(id: 2) { id } }",  # other arguments: a conflict
        "{ a: product(id: 1) { id } b: product(id: 1) { id } }",  # other aliases
        "{ x: product(id: 1) { id } x: order(id: 1) { id } }",  # other fields, one key
        "query($s: Boolean!) { me { id } me @include(if: $s) { id } }",  # other directives
        "{ product(id: 1) product(id: 1) { id } }",  # a leaf and a field with a selection
        '{ products(category: "a") { totalCount } products(category: "b") { totalCount } }',
        "{ products(first: 1) { totalCount } products(first: 1.0) { totalCount } }",
    ],
)
def test_selections_that_differ_are_all_kept(query: str) -> None:
    assert merged_text(query) == print_ast(parse(query))


def test_fragments_spread_twice_and_equal_inline_fragments_are_kept_once() -> None:
    same_document(
        "{ product(id: 1) { ...P ...P ... on Product { id } ... on Product { name } } }"
        " fragment P on Product { id id }",
        "{ product(id: 1) { ...P ... on Product { id name } } } fragment P on Product { id }",
    )
    # a spread under another directive is another selection
    query = "{ product(id: 1) { ...P ...P @skip(if: true) } } fragment P on Product { id }"
    assert merged_text(query) == print_ast(parse(query))


def test_merging_leaves_the_parsed_document_untouched() -> None:
    document = parse("{ product(id: 1) { id } product(id: 1) { name } }")
    before = print_ast(document)
    merged(document)
    assert print_ast(document) == before


def test_what_does_not_merge_is_the_parsed_nodes_themselves() -> None:
    document = parse("{ product(id: 1) { id reviews { id } } } fragment P on Product { id }")
    assert merged(document) is document
    document = parse("{ a: product(id: 1) { id } b: product(id: 1) { id id } }")
    first, second = merged(document).definitions[0].selection_set.selections  # type: ignore[attr-defined]
    assert first is document.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    assert print_ast(second) == "b: product(id: 1) {\n  id\n}"


# --- counting ---------------------------------------------------------------------------------


def test_fields_are_counted_with_parents_and_fragments_expanded() -> None:
    assert count_fields(parse("{ __typename }")) == 1
    assert count_fields(parse("{ product(id: 1) { id reviews { id body } } }")) == 5
    query = "{ a: product(id: 1) { ...P } b: product(id: 2) { ...P } }"
    query += " fragment P on Product { id name }"
    assert count_fields(parse(query)) == 2 + 2 * 2
    # a fragment nobody spreads is still validated, so it still counts
    assert count_fields(parse("{ __typename } fragment P on Product { id name }")) == 3


def test_counting_stops_just_past_the_limit() -> None:
    # each level spreads the one below 3 times: over 3^30 fields, counted in a few hundred steps
    levels = 30
    fragments = [f"fragment F{levels} on Product {{ id }}"]
    for n in range(levels - 1, -1, -1):
        fragments.append(
            f"fragment F{n} on Product {{ ...F{n + 1} ...F{n + 1} a: id ...F{n + 1} }}"
        )
    document = parse("{ product(id: 1) { ...F0 } } " + " ".join(fragments))
    assert count_fields(document, 1000) == 1001
    assert count_fields(document, 10**30) > 3**levels


def test_a_fragment_cycle_or_an_unknown_fragment_does_not_break_the_count() -> None:
    cycle = parse(
        "{ product(id: 1) { ...A } } fragment A on Product { id reviews { product { ...A } } }"
    )
    assert count_fields(cycle) == 1 + 3  # product, then A's id, reviews, product once
    assert count_fields(parse("{ product(id: 1) { ...Nowhere } }")) == 1


def test_a_long_chain_of_fragments_is_counted_without_recursion() -> None:
    links = 3000  # far past Python's recursion limit
    chain = [f"fragment F{i} on Product {{ ...F{i + 1} id }}" for i in range(links)]
    chain.append(f"fragment F{links} on Product {{ name }}")
    document = parse("{ product(id: 1) { ...F0 } } " + " ".join(chain), max_tokens=50_000)
    assert count_fields(document, 10**6) == 1 + links + 1
    assert count_fields(document, 100) == 101


def test_a_chain_under_the_token_cap_is_refused_not_a_crash() -> None:
    links = 700
    chain = [f"fragment F{i} on Product {{ ...F{i + 1} id }}" for i in range(links)]
    chain.append(f"fragment F{links} on Product {{ name }}")
    query = "{ product(id: 1) { ...F0 } } " + " ".join(chain)
    [error] = refused(
        GraphQLExecutor(SCHEMA, max_tokens=RAISED), query
    )  # graphql-core's validation gives up
    assert error["extensions"]["code"] in {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"}


# --- the executor -----------------------------------------------------------------------------


def repeated(times: int, selection: str = "product(id: 1) { id }") -> str:
    return "{ " + f"{selection} " * times + "}"


@pytest.mark.parametrize(
    "query",
    [
        repeated(555),  # graphql-core alone: "Validation aborted." after most of a second
        repeated(1200, "__typename"),
        repeated(400, "product(id: 1) { reviews { id } }"),
        repeated(800, "... on Query { __typename }"),
        "{ product(id: 1) { " + "...P " * 2400 + "} } fragment P on Product { id }",
    ],
)
def test_documents_that_repeat_themselves_are_accepted(query: str) -> None:
    prepared = GraphQLExecutor(SCHEMA, max_tokens=RAISED).prepare(query)
    # what runs is what the client sent: the merge is only for validation
    assert print_ast(prepared.document) == print_ast(parse(query, max_tokens=RAISED))


def conflicting(count: int) -> str:
    return "{ " + " ".join(f"product(id: {i}) {{ id }}" for i in range(1, count + 1)) + " }"


def test_repeated_conflicting_fields_are_refused_with_the_conflict() -> None:
    errors = refused(GraphQLExecutor(SCHEMA), conflicting(20))
    assert len(errors) == 101  # 190 conflicting pairs: graphql-core's 100, then it stops
    assert all(e["extensions"] == {"code": "BAD_USER_INPUT"} for e in errors)
    assert "Fields 'product' conflict because they have differing arguments" in str(
        errors[0]["message"]
    )
    # 400 of them would make graphql-core compare 80,000 pairs: the budget stops it first
    [error] = refused(GraphQLExecutor(SCHEMA, max_tokens=RAISED), conflicting(400))
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX"}


def test_past_max_fields_is_query_too_complex_without_validation() -> None:
    executor = GraphQLExecutor(SCHEMA, max_fields=10)
    # ten field selections pass, parents included
    executor.prepare("{ product(id: 1) { id name reviews { id body author { id name } } price } }")
    # eleven unknown fields: the count refuses them before validation could name one
    [error] = refused(executor, "{ " + " ".join(f"f{i}" for i in range(11)) + " }")
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "fields": 11, "maxFields": 10}
    assert "more than 10 fields" in str(error["message"])


def test_max_fields_counts_fragment_expansion_and_merges_first() -> None:
    executor = GraphQLExecutor(SCHEMA, max_fields=10)
    fragment = " fragment P on Product { id name price }"
    executor.prepare("{ a: product(id: 1) { ...P } b: product(id: 2) { ...P } }" + fragment)  # 8
    [error] = refused(
        executor,
        "{ a: product(id: 1) { ...P } b: product(id: 2) { ...P } c: product(id: 3) { ...P } }"
        + fragment,
    )  # 12
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    executor.prepare(repeated(50))  # 50 copies of two fields: two after merging


def test_a_fragment_bomb_is_refused_by_the_count() -> None:
    levels = 40
    fragments = [f"fragment F{levels} on Product {{ id }}"]
    for n in range(levels - 1, -1, -1):
        fragments.append(
            f"fragment F{n} on Product {{ ...F{n + 1} a: reviews {{ ...R{n} }} ...F{n + 1} }}"
        )
        fragments.append(f"fragment R{n} on Review {{ product {{ ...F{n + 1} }} }}")
    [error] = refused(
        GraphQLExecutor(SCHEMA, max_tokens=RAISED),
        "{ product(id: 1) { ...F0 } } " + " ".join(fragments),
    )
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "fields": 1001, "maxFields": 1000}


def fragments_side_by_side(count: int) -> str:
    spreads = " ".join(f"...F{i}" for i in range(count))
    definitions = " ".join(f"fragment F{i} on Product {{ id }}" for i in range(count))
    return f"{{ product(id: 1) {{ {spreads} }} }} {definitions}"


def test_the_overlap_rule_has_a_budget_and_its_end_is_query_too_complex() -> None:
    executor = GraphQLExecutor(SCHEMA, max_tokens=RAISED)
    executor.prepare(fragments_side_by_side(20))
    [error] = refused(executor, fragments_side_by_side(300))
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX"}
    assert "too complex to validate" in str(error["message"])


def test_refusals_are_cached_like_acceptances() -> None:
    executor = GraphQLExecutor(SCHEMA, max_fields=3)
    query = "{ product(id: 1) { id name price } }"
    first = refused(executor, query)
    assert refused(executor, query) == first
    assert len(executor._cache) == 1


# --- suggestions ------------------------------------------------------------------------------

TYPOS = {
    "field": "{ prodct(id: 1) { id } }",
    "nested field": "{ product(id: 1) { nam } }",
    "argument": "{ product(idd: 1) { id } }",
    "type": "{ product(id: 1) { ... on Prodct { id } } }",
    "fragment type": "{ product(id: 1) { ...P } } fragment P on Prodct { id }",
    "variable type": "query($id: IDD!) { product(id: $id) { id } }",
}


@pytest.mark.parametrize("name", sorted(TYPOS))
def test_with_introspection_off_validation_suggests_no_names(name: str) -> None:
    query = TYPOS[name]
    shown = refused(GraphQLExecutor(SCHEMA, introspection=True), query)
    hidden = refused(GraphQLExecutor(SCHEMA, introspection=False), query)
    assert any("Did you mean" in str(e["message"]) for e in shown)
    assert hidden and not any("Did you mean" in str(e["message"]) for e in hidden)
    # the same errors, only without the suggestion
    assert len(hidden) == len(shown)
    for without, full in zip(hidden, shown, strict=True):
        assert str(full["message"]).startswith(str(without["message"]))


# --- the gateway ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(shop: RunningServices) -> Iterator[GraphQLClient]:
    settings = gateway_settings(shop.urls, server={"introspection": False})
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        yield client
        client.close()


def wide(products: int, fields: int = 40) -> str:
    """`products` aliased product lookups, each spreading one fragment of `fields` fields."""
    aliases = " ".join(f"f{i}: id" for i in range(fields))
    lookups = " ".join(f"p{i}: product(id: {i + 1}) {{ ...P }}" for i in range(products))
    return f"{{ {lookups} }} fragment P on Product {{ {aliases} }}"


def test_the_gateway_refuses_past_max_fields_before_any_upstream_call(
    small: GraphQLClient, calls: UpstreamCalls
) -> None:
    query = wide(25)  # 25 * 41 = 1025 fields, the default limit is 1000
    response = small.post(query)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "fields": 1001, "maxFields": 1000}
    assert calls.total() == 0
    legacy = small.post(query, headers={"Accept": "application/json"})
    assert legacy.status_code == 200
    assert legacy.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    # under the limit, the same shape goes on to the other checks (here: too many aliases)
    below = small.post(wide(24))  # 984 fields
    assert below.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "aliases" in below.json()["errors"][0]["message"]


def test_the_gateway_runs_a_repeated_field_as_sent(gql: GraphQLClient) -> None:
    body = gql.execute(repeated(100, "product(id: 1) { id }"))
    assert body["data"] == {"product": {"id": "1"}}
    assert body["extensions"] == {"cost": 2 * 100}  # the cost is the sent document's


def test_the_gateway_suggests_no_names_with_introspection_off(small: GraphQLClient) -> None:
    response = small.post("{ prodct(id: 1) { id } }")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"] == "Cannot query field 'prodct' on type 'Query'."


# --- literals out of range --------------------------------------------------------------------

FLOATS = build_schema("""
    type Query { near(lat: Float!, radius: Float = 1.0, tags: [Float!]): Int, count(n: Int): Int }
""")


@pytest.mark.parametrize(
    "literal",
    ["1e999", "-1e999", "1" + "0" * 400, "[1.5, 1e400]"],
    ids=["inf", "-inf", "huge int", "inside a list"],
)
def test_a_float_literal_past_the_double_range_is_bad_input(literal: str) -> None:
    executor = GraphQLExecutor(FLOATS)
    argument = "tags" if literal.startswith("[") else "radius"
    [error] = refused(executor, f"{{ near(lat: 1.0, {argument}: {literal}) }}")
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "Float cannot represent non-finite value" in str(error["message"])


def test_finite_floats_and_defaults_pass() -> None:
    executor = GraphQLExecutor(FLOATS)
    executor.prepare("{ near(lat: 1e308, radius: -2, tags: [0.5, 3]) }")
    executor.prepare("query($r: Float = 2.5e10) { near(lat: 0, radius: $r) }")
    with pytest.raises(RequestErrors):  # in a variable's default too
        executor.prepare("query($r: Float = 1e999) { near(lat: 0, radius: $r) }")
    [error] = refused(executor, "{ count(n: 2147483648) }")  # an Int literal past 32 bits
    assert "Int cannot represent non 32-bit signed integer value" in str(error["message"])


def test_limits_max_fields_from_the_config_is_the_gateways(shop: RunningServices) -> None:
    settings = gateway_settings(shop.urls, limits={"max_fields": 5})
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        six = client.post("{ product(id: 1) { id name price currency category } }")
        five = client.post("{ product(id: 1) { id name price currency } }")
        client.close()
    assert six.status_code == 400
    assert six.json()["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "fields": 6,
        "maxFields": 5,
    }
    assert five.status_code == 200 and "errors" not in five.json()


@pytest.mark.parametrize("limits", [True, False])
def test_variable_errors_suggest_no_names_with_introspection_off(
    shop: RunningServices, limits: bool
) -> None:
    """Coercing variables names no field of an input type when introspection is off, whether
    the limits or the execution coerce them first."""
    mutation = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }"
    variables = {"input": {"itmes": [{"productId": "1", "quantity": 1}]}}
    for introspection in (False, True):
        settings = gateway_settings(
            shop.urls,
            server={"introspection": introspection},
            limits={"enabled": limits},
        )
        with running_gateway(settings) as url:
            client = GraphQLClient(url)
            response = client.post(mutation, variables, token=sign("2"))
            client.close()
        assert response.status_code == 400
        errors = response.json()["errors"]
        assert {error["extensions"]["code"] for error in errors} == {"BAD_USER_INPUT"}
        messages = " ".join(error["message"] for error in errors)
        assert "unknown field 'itmes'" in messages
        assert ("Did you mean 'items'" in messages) is introspection
