"""The fast path's `@defer` against graphql-core's own incremental execution, and against the
answer in one piece: for each document, the same first part, the same merged parts (data and
errors), and the merged parts equal to the one-piece answer; over a healthy shop and over one
whose reviews always fail. Each run gets a fresh `RequestContext` in its own event loop."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import parse
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from bff.auth import Principal
from bff.graphql.executor import GraphQLExecutor, RequestErrors
from bff.graphql.fallbacks import Fallback
from bff.graphql.fastpath import plan_operation
from bff.graphql.incremental import Deferred
from bff.rendering.errors import format_errors
from bff.upstream import Upstreams
from services import RunningServices, ServiceOptions, ServiceSpec
from tests.querygen import GeneratedQuery, is_valid, queries
from tests.support import SHOP, SHOP_SCHEMA, gateway_settings, running_shop
from tests.test_defer import CASES

INLINE = re.compile(r"(\.\.\.(?: on \w+)?(?:\s*@\w+\([^)]*\))*)\s*\{")
SPREAD = re.compile(r"\.\.\.(?!on\b)([A-Za-z_]\w*)")
USER = Principal(sub="1", scopes=frozenset({"orders:read", "users:read:email"}))
FAST_CASES = {k: v for k, v in CASES.items() if "$later" not in k and "$later" not in v}
NON_NULL = """{ product(id: 3) { id ... @defer(label: "count") { name reviewCount } } }"""


def merged(parts: list[dict[str, Any]]) -> tuple[Any, list[tuple[str, tuple[Any, ...]]]]:
    data = copy.deepcopy(parts[0]["data"])
    errors = list(parts[0].get("errors", ()))
    for part in parts[1:]:
        for increment in part["incremental"]:
            target = data
            for key in increment["path"]:
                target = target[key]
            if increment["data"] is not None:
                _merge(target, increment["data"])
            errors.extend(increment["errors"])
    return data, sorted((e["message"], tuple(e["path"])) for e in errors)


def _merge(target: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def run(
    shop: RunningServices,
    query: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
) -> dict[str, Any]:
    """The query three ways: deferred on the fast path, on graphql-core, and in one piece
    (a request error is the string `"request error"` in each place)."""
    fast, core = GraphQLExecutor(SHOP_SCHEMA), GraphQLExecutor(SHOP_SCHEMA, fast=False)
    how = {"operation_name": operation_name, "variables": variables}

    async def main() -> dict[str, Any]:
        pools = Upstreams.from_settings(gateway_settings(shop.urls))
        found: dict[str, Any] = {}
        try:
            for name, executor in (("fast", fast), ("core", core)):
                prepared = executor.prepare(query)
                try:
                    deferred = await executor.execute_deferred(
                        prepared, **how, context=SHOP.context(USER, pools)
                    )
                except RequestErrors:
                    found[name] = "request error"
                    continue
                found[name] = await _drain(deferred)
            prepared = fast.prepare(query)
            try:
                whole = await fast.execute(prepared, **how, context=SHOP.context(USER, pools))
            except RequestErrors:
                found["whole"] = "request error"
                return found
            found["whole"] = (whole.data, sorted(
                (e["message"], tuple(e["path"])) for e in format_errors(whole.errors or ())
            ))  # fmt: skip
        finally:
            await pools.aclose()
        return found

    loop = asyncio.new_event_loop()
    try:
        found = loop.run_until_complete(main())
    finally:
        loop.close()
    found["fast_runs"] = fast.stats.fast
    return found


def in_order(errors: Any) -> list[dict[str, Any]]:
    """Errors by path and message: the order they happened in follows the upstream calls'
    timing, on both paths, and is not part of the answer."""
    return sorted(format_errors(errors), key=lambda e: (str(e.get("path")), e["message"]))


async def _drain(deferred: Deferred) -> list[dict[str, Any]]:
    first: dict[str, Any] = {"data": deferred.data}
    if deferred.errors:
        first["errors"] = in_order(deferred.errors)
    parts = [first]
    if deferred.parts is not None:
        async for later in deferred.parts:
            increments = [
                {
                    "data": i.data,
                    "path": i.path,
                    "label": i.label,
                    "errors": in_order(i.errors),
                }
                for i in later.increments
            ]
            parts.append({"incremental": increments, "hasNext": later.has_next})
    return parts


@pytest.fixture(scope="module")
def failing_reviews() -> Iterator[RunningServices]:
    failing = ServiceOptions(failure_rate=1.0, fail_status=503)
    with running_shop(ServiceSpec("reviews", failing)) as shop:
        yield shop


@pytest.mark.parametrize("name", sorted(FAST_CASES))
def test_the_fast_path_defers_as_graphql_core_does(shop: RunningServices, name: str) -> None:
    query = FAST_CASES[name]
    plan = plan_operation(SHOP_SCHEMA, parse(query), None, deferring=True)
    assert not isinstance(plan, Fallback), plan
    found = run(shop, query)
    assert found["fast_runs"] == 2  # the deferred run and the one-piece run
    fast, core = found["fast"], found["core"]
    assert fast[0] == core[0]  # the same first part
    assert merged(fast) == merged(core) == found["whole"]
    assert not found["whole"][1]
    assert [p["hasNext"] for p in fast[1:]] == [True] * (len(fast) - 2) + [False] * (len(fast) > 1)


@pytest.mark.parametrize("query", [CASES["inline fragment on list items"], NON_NULL])
def test_deferred_errors_on_the_fast_path_match_graphql_core(
    failing_reviews: RunningServices, query: str
) -> None:
    found = run(failing_reviews, query)
    fast, core = found["fast"], found["core"]
    assert fast[0] == core[0]
    assert "errors" not in fast[0]  # the first part needs nothing from reviews
    assert merged(fast) == merged(core)
    assert merged(fast)[1]  # the errors came, in the later parts
    fast_increments = sorted(
        (tuple(i["path"]), i["data"] is None, len(i["errors"])) for p in fast[1:]
        for i in p["incremental"]
    )  # fmt: skip
    core_increments = sorted(
        (tuple(i["path"]), i["data"] is None, len(i["errors"])) for p in core[1:]
        for i in p["incremental"]
    )  # fmt: skip
    assert fast_increments == core_increments


def test_what_the_fast_path_leaves_to_graphql_core_when_deferring() -> None:
    variable = parse("query If($x: Boolean!) { product(id: 1) { id ... @defer(if: $x) { name } } }")
    assert isinstance(plan_operation(SHOP_SCHEMA, variable, None, deferring=True), Fallback)
    # in one piece the same document stays on the fast path: @defer has no effect there
    assert not isinstance(plan_operation(SHOP_SCHEMA, variable, None), Fallback)


@st.composite
def deferred_queries(draw: st.DrawFn) -> GeneratedQuery:
    """A generated query with `@defer` (with or without a label) on some of its fragments."""
    query = draw(queries(SHOP_SCHEMA))
    marks = iter(draw(st.lists(st.sampled_from(["@defer", "", '@defer(label: "x")']),
                               min_size=64, max_size=64)))  # fmt: skip

    def inline(found: re.Match[str]) -> str:
        return f"{found.group(1)} {next(marks, '')} {{"

    def spread(found: re.Match[str]) -> str:
        return f"...{found.group(1)} {next(marks, '')}"

    document = SPREAD.sub(spread, INLINE.sub(inline, query.document))
    if "@defer" not in document or not is_valid(SHOP_SCHEMA, document):
        document = query.document.replace("{", "{ ... @defer { __typename }", 1)
    return GeneratedQuery(document, query.variables, query.operation_name)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(query=deferred_queries())
def test_generated_deferred_queries_agree(shop: RunningServices, query: GeneratedQuery) -> None:
    note(str(query))
    found = run(shop, query.document, query.variables, query.operation_name)
    fast, core, whole = found["fast"], found["core"], found["whole"]
    if fast == "request error" or core == "request error":
        assert fast == core == whole == "request error"
        return
    assert fast[0] == core[0]
    assert merged(fast) == merged(core)
    fast_increments = sorted(
        (tuple(i["path"]), i["label"] or "", i["data"] is None) for p in fast[1:]
        for i in p["incremental"]
    )  # fmt: skip
    core_increments = sorted(
        (tuple(i["path"]), i["label"] or "", i["data"] is None) for p in core[1:]
        for i in p["incremental"]
    )  # fmt: skip
    assert fast_increments == core_increments
    if not whole[1]:  # without errors, nothing nulled a fragment: the parts make the answer
        assert merged(fast) == whole
