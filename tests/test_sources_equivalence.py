"""The fast path and graphql-core agree on schemas generated from OpenAPI documents.

The same comparison as `tests/test_fastpath_equivalence.py` (data as JSON text, errors one by
one, request errors, extensions), over the shop served from its OpenAPI documents with links
(`bench/openapi/shop`): a generated corpus (`tests.querygen` with pools for the generated
arguments), then hand-written cases for links, lookups and failing upstreams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from graphql import ExecutionResult, GraphQLError
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from bench.openapi import DASHBOARD, shop_sources
from bff.auth import Principal
from bff.config import Settings
from bff.graph import Graph
from bff.graphql.executor import GraphQLExecutor, RequestErrors
from bff.graphql.fastpath import OperationPlan
from bff.graphs import served_graph
from bff.upstream import Upstreams
from services import RunningServices, ServiceSpec, shop_data
from tests.querygen import GeneratedQuery, queries
from tests.support import gateway_settings, running_shop
from tests.test_fastpath_equivalence import (
    ALWAYS_FAILING,
    PATIENT,
    PRINCIPALS,
    difference,
    observe,
    racing,
    settle,
)

DATA = shop_data(42)
SOURCES = ("users", "catalog", "orders", "reviews", "inventory")
KNOWN = sorted(DATA.products)[:40]

POOLS = {
    "id": lambda _: st.sampled_from([*KNOWN, 99999, 0]),
    "ids": lambda _: st.lists(st.sampled_from([*KNOWN[:8], 99999]), max_size=5),
    "productIds": lambda _: st.lists(st.sampled_from([*KNOWN[:8], 99999]), min_size=1, max_size=4),
    "userId": lambda _: st.sampled_from([1, 2, 3, 99999]),
    "offset": lambda _: st.sampled_from([0, 1, 3]),
    "category": lambda _: st.sampled_from([*sorted(DATA.product_ids_by_category), "unknown"]),
}


def sources_settings(urls: dict[str, list[str]]) -> Settings:
    return gateway_settings({n: urls[n] for n in SOURCES}, PATIENT, **shop_sources())


GRAPH: Graph = served_graph(sources_settings({n: ["http://127.0.0.1:1"] for n in SOURCES}))


async def execute(
    executor: GraphQLExecutor,
    query: GeneratedQuery,
    principal: Principal,
    pools: Upstreams,
    *,
    reference: bool,
) -> tuple[ExecutionResult | None, list[GraphQLError]]:
    context = GRAPH.context(principal, pools)
    try:
        prepared = executor.prepare(query.document)
        result = await executor.execute(
            prepared,
            operation_name=query.operation_name,
            variables=query.variables,
            context=context,
            reference=reference,
        )
    except RequestErrors as error:
        return None, error.errors
    finally:
        await settle()
    return result, list(result.errors or ())


def assert_equivalent(
    executor: GraphQLExecutor,
    config: Settings,
    query: GeneratedQuery,
    principals: list[str],
    *,
    upstreams_race: bool = False,
) -> None:
    async def main() -> None:
        pools = Upstreams.from_settings(config)
        try:
            for name in principals:
                principal = PRINCIPALS[name]
                fast = observe(*await execute(executor, query, principal, pools, reference=False))
                ref = observe(*await execute(executor, query, principal, pools, reference=True))
                if upstreams_race:
                    fast, ref = racing(fast), racing(ref)
                assert fast == ref, difference(name, query, ref, fast)
        finally:
            await pools.aclose()

    asyncio.run(main())


@pytest.fixture(scope="module")
def executor() -> GraphQLExecutor:
    return GraphQLExecutor(GRAPH.schema, fast=True)


@pytest.fixture(scope="module")
def healthy(shop: RunningServices) -> Settings:
    return sources_settings(shop.urls)


@pytest.fixture(scope="module")
def failing() -> Iterator[Settings]:
    specs = (ServiceSpec(name, ALWAYS_FAILING) for name in ("inventory", "reviews", "users"))
    with running_shop(*specs) as broken:
        yield sources_settings(broken.urls)


PRINCIPAL_ORDERS = st.permutations(list(PRINCIPALS))
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=80, deadline=None, suppress_health_check=SLOW)
@given(query=queries(GRAPH.schema, POOLS), principals=PRINCIPAL_ORDERS)
def test_generated_queries_agree(
    executor: GraphQLExecutor, healthy: Settings, query: GeneratedQuery, principals: list[str]
) -> None:
    note(str(query))
    assert_equivalent(executor, healthy, query, principals)


@settings(max_examples=20, deadline=None, suppress_health_check=SLOW)
@given(query=queries(GRAPH.schema, POOLS), principals=PRINCIPAL_ORDERS)
def test_generated_queries_agree_when_upstreams_fail(
    executor: GraphQLExecutor, failing: Settings, query: GeneratedQuery, principals: list[str]
) -> None:
    note(str(query))
    assert_equivalent(executor, failing, query, principals, upstreams_race=True)


def test_the_generated_corpus_takes_the_fast_path() -> None:
    executor = GraphQLExecutor(GRAPH.schema, fast=True)
    fallbacks: list[str] = []

    @settings(max_examples=30, deadline=None, database=None, derandomize=True)
    @given(query=queries(GRAPH.schema, POOLS))
    def draw(query: GeneratedQuery) -> None:
        plan = executor.plan(executor.prepare(query.document), query.operation_name)
        if not isinstance(plan, OperationPlan):
            fallbacks.append(plan.reason)

    draw()
    assert len(fallbacks) <= 3, fallbacks


CASES = {
    "the dashboard": GeneratedQuery(DASHBOARD, {"limit": 20}, None),
    "lookups, missing ones null": GeneratedQuery(
        "{ a: order(id: 1) { id items { product { id stock { available } } } }"
        " b: order(id: 999999) { id } c: product(id: 0) { id } d: user(id: 3) { name } }",
        {},
        None,
    ),
    "links under aliases and fragments": GeneratedQuery(
        "query Q($ids: [Int!]!) { products(ids: $ids) { items { ...P x: reviews { id author {"
        " name } } } } } fragment P on Product { id reviews { rating } stock { productId } }",
        {"ids": [1, 2, 2, 99999]},
        "Q",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hand_written_cases_agree(executor: GraphQLExecutor, healthy: Settings, name: str) -> None:
    assert_equivalent(executor, healthy, CASES[name], list(PRINCIPALS))


@pytest.mark.parametrize("name", list(CASES))
def test_hand_written_cases_agree_when_upstreams_fail(
    executor: GraphQLExecutor, failing: Settings, name: str
) -> None:
    assert_equivalent(executor, failing, CASES[name], list(PRINCIPALS), upstreams_race=True)


def test_the_dashboard_takes_the_fast_path(executor: GraphQLExecutor) -> None:
    plan = executor.plan(executor.prepare(DASHBOARD), None)
    assert isinstance(plan, OperationPlan)
