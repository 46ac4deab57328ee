"""`@defer` over `multipart/mixed`, read byte by byte as it arrives (SPEC section 14).

A raw multipart reader (`read_parts`) notes when each part is complete: the first part must be
in while a slow upstream behind a deferred fragment is still answering, and the parts merged
must equal the one-piece answer of the same document (what a client that does not read
multipart gets, on the fast path). Deferred fragments that resolve together share one batch
call; their errors arrive in their own part.
"""

from __future__ import annotations

import copy
import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from graphql import parse, print_schema

from bff.graphql.fallbacks import Fallback
from bff.graphql.fastpath import plan_operation
from bff.persisted import sha256_hex
from bff.rendering.multipart import accepts_multipart
from bff.telemetry.logs import BffFormatter
from services import RunningServices, ServiceOptions, ServiceSpec
from tests.support import (
    SHOP_SCHEMA,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    running_shop,
    sign,
)

APOLLO_ACCEPT = "multipart/mixed;deferSpec=20220824, application/json"
SLOW = 0.8  # seconds the reviews service takes to answer, in the timing test
TOKEN = sign(ttl=3600)  # made at collection: valid however late this file runs

RATINGS = """query Ratings { orders(first: 4) { nodes { id status
  items { quantity product { id name ... @defer(label: "rating") { averageRating } } } } } }"""

CASES = {
    "inline fragment on list items": RATINGS,
    "named fragment spread": """query Spread { product(id: 3) { id ...Slow @defer } }
        fragment Slow on Product { averageRating reviewCount stock }""",
    "nested defers": """{ orders(first: 2) { nodes { id ... @defer(label: "outer") {
        user { name } items { product { name ... @defer(label: "inner") { stock } } } } } } }""",
    "at the root": """{ product(id: 2) { name }
        ... @defer { products(first: 3) { nodes { id } } } }""",
    "if: false": """{ product(id: 4) { id ... @defer(if: false) { averageRating } } }""",
    "if from a variable": """query If($later: Boolean!) { product(id: 4) { id
        ... @defer(if: $later) { averageRating name } } }""",
    "a field in and out of the fragment": """{ product(id: 5) { id name
        ... @defer { name price } } }""",
}


@dataclass
class Part:
    at: float  # seconds after the request was sent
    body: dict[str, Any]


def read_parts(
    url: str,
    query: str | None,
    variables: dict[str, Any] | None = None,
    accept: str = APOLLO_ACCEPT,
    **more: Any,
) -> tuple[httpx.Response, list[Part]]:
    """POST `query` and read the multipart body raw: a part is complete, and timed, as soon
    as its JSON is whole (the part's own bytes, not the next boundary, tell). `more`: other
    members of the request body, and `headers`."""
    body: dict[str, Any] = {} if query is None else {"query": query}
    if variables is not None:
        body["variables"] = variables
    headers = {"Accept": accept, "Authorization": f"Bearer {TOKEN}", **more.pop("headers", {})}
    body.update(more)
    parts: list[Part] = []
    started = time.perf_counter()
    with (
        httpx.Client(timeout=10, trust_env=False) as http,
        http.stream("POST", f"{url}/graphql", json=body, headers=headers) as response,
    ):
        buffer = b""
        ended = False
        for chunk in response.iter_raw():
            buffer += chunk
            while True:
                assert buffer.startswith(b"\r\n---"), buffer[:40]
                if buffer.startswith(b"\r\n-----\r\n"):
                    ended, buffer = True, buffer[9:]
                    break
                head_end = buffer.find(b"\r\n\r\n", 5)
                if head_end < 0:
                    break
                head = buffer[5:head_end].decode()
                assert head.strip().lower() == "content-type: application/json; charset=utf-8"
                end = buffer.find(b"\r\n---", head_end + 4)
                text = buffer[head_end + 4 : end if end >= 0 else len(buffer)]
                try:
                    payload = orjson.loads(text)
                except orjson.JSONDecodeError:
                    break  # not whole yet
                parts.append(Part(time.perf_counter() - started, payload))
                buffer = buffer[head_end + 4 + len(text) :]
                if not buffer:
                    break
        assert ended and buffer == b"", "the body must end with the closing boundary"
    return response, parts


def merged(parts: list[Part]) -> dict[str, Any]:
    """The parts put together as a client does: each fragment's data merged at its path."""
    first = parts[0].body
    result = copy.deepcopy({k: first[k] for k in ("data", "errors", "extensions") if k in first})
    for later in parts[1:]:
        for increment in later.body.get("incremental", ()):
            target: Any = result["data"]
            for key in increment["path"]:
                target = target[key]
            if increment["data"] is not None:
                _merge(target, increment["data"])
            result.setdefault("errors", []).extend(increment.get("errors", ()))
    if not result.get("errors"):
        result.pop("errors", None)
    return result


def _merge(target: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def one_piece(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(f"{url}/graphql", json=body, headers=headers, trust_env=False)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = response.json()
    return answer


def _errors(body: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return sorted((e["message"], tuple(e.get("path") or ())) for e in body.get("errors", ()))


@pytest.fixture(scope="module")
def slow_reviews() -> Iterator[RunningServices]:
    with running_shop(ServiceSpec("reviews", ServiceOptions(latency=SLOW))) as shop:
        yield shop


def test_the_first_part_does_not_wait_for_a_slow_upstream_behind_defer(
    slow_reviews: RunningServices,
) -> None:
    with running_gateway(gateway_settings(slow_reviews.urls)) as url:
        response, parts = read_parts(url, RATINGS)
    assert response.status_code == 200
    assert response.headers["content-type"] == ('multipart/mixed; boundary="-"; deferSpec=20220824')
    first, *later = parts
    assert first.body["hasNext"] is True
    items = [i for o in first.body["data"]["orders"]["nodes"] for i in o["items"]]
    assert items and all("averageRating" not in i["product"] for i in items)
    # the first part is whole while reviews is still answering; the ratings come after it
    assert first.at < SLOW <= later[-1].at, [p.at for p in parts]
    assert later[-1].body["hasNext"] is False
    increments = [i for p in later for i in p.body["incremental"]]
    assert len(increments) == len(items)
    assert {i["label"] for i in increments} == {"rating"}
    assert all(set(i["data"]) == {"averageRating"} and not i.get("errors") for i in increments)
    paths = sorted(tuple(i["path"]) for i in increments)
    assert paths == sorted(
        ("orders", "nodes", n, "items", m, "product")
        for n, order in enumerate(first.body["data"]["orders"]["nodes"])
        for m in range(len(order["items"]))
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_merged_parts_equal_the_answer_in_one_piece(shop: RunningServices, name: str) -> None:
    query = CASES[name]
    variables = {"later": True} if "$later" in query else None
    with running_gateway(gateway_settings(shop.urls)) as url:
        whole = one_piece(url, query, variables)
        response, parts = read_parts(url, query, variables)
    assert response.status_code == 200
    assert "errors" not in whole, whole
    assert merged(parts) == whole
    deferring = "if: false" not in query
    assert parts[0].body["hasNext"] is deferring
    assert len(parts) > 1 if deferring else len(parts) == 1
    assert parts[-1].body["hasNext"] is False


def test_deferred_fragments_resolving_together_share_their_batch_call(
    shop: RunningServices,
) -> None:
    calls = UpstreamCalls(shop)
    with running_gateway(gateway_settings(shop.urls)) as url:
        calls.reset()
        whole = one_piece(url, RATINGS)
        in_one_piece = calls.by_service()
        calls.reset()
        _, parts = read_parts(url, RATINGS)
        in_parts = calls.by_service()
    calls.close()
    items = sum(len(o["items"]) for o in whole["data"]["orders"]["nodes"])
    assert items > 4
    assert in_parts["reviews"] == in_one_piece["reviews"] == 1  # one call for every product
    assert in_parts == in_one_piece
    assert merged(parts) == whole


def test_errors_of_a_deferred_fragment_arrive_in_its_part() -> None:
    failing = ServiceOptions(failure_rate=1.0, fail_status=503)
    with (
        running_shop(ServiceSpec("reviews", failing)) as shop,
        running_gateway(gateway_settings(shop.urls)) as url,
    ):
        whole = one_piece(url, RATINGS)
        _, parts = read_parts(url, RATINGS)
        nulled = """{ product(id: 3) { id ... @defer(label: "count") { name reviewCount } } }"""
        _, failed = read_parts(url, nulled)
    assert "errors" not in parts[0].body  # the first part needs nothing from reviews
    increments = [i for p in parts[1:] for i in p.body["incremental"]]
    assert increments and all(i["data"] == {"averageRating": None} for i in increments)
    for increment in increments:
        (error,) = increment["errors"]
        assert error["path"] == [*increment["path"], "averageRating"]
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert merged(parts)["data"] == whole["data"]
    assert _errors(merged(parts)) == _errors(whole)
    # a non-null field failing nulls the fragment: its part holds null and the error
    ((increment,),) = [p.body["incremental"] for p in failed[1:] if "incremental" in p.body]
    assert failed[0].body["data"] == {"product": {"id": "3"}}
    assert increment["data"] is None and increment["path"] == ["product"]
    assert increment["label"] == "count"
    assert [e["path"] for e in increment["errors"]] == [["product", "reviewCount"]]


def test_a_client_that_does_not_read_multipart_gets_one_response_from_the_fast_path() -> None:
    document = parse(RATINGS)
    plan = plan_operation(SHOP_SCHEMA, document, None)
    assert not isinstance(plan, Fallback), plan  # @defer does not send it to graphql-core
    assert "directive @defer(" in print_schema(SHOP_SCHEMA)


def test_multipart_only_clients_limits_and_cost_see_deferred_operations(
    shop: RunningServices,
) -> None:
    limited = gateway_settings(shop.urls, limits={"max_depth": 3})
    with running_gateway(limited) as url:
        too_deep = httpx.post(
            f"{url}/graphql",
            json={"query": RATINGS},
            headers={"Accept": APOLLO_ACCEPT, "Authorization": f"Bearer {TOKEN}"},
            trust_env=False,
        )
        _, parts = read_parts(url, CASES["at the root"], accept="multipart/mixed")
    assert too_deep.headers["content-type"].startswith("application/json")
    assert too_deep.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert "extensions" in parts[0].body and "cost" in parts[0].body["extensions"]
    assert merged(parts)["data"]["products"]["nodes"]


@pytest.mark.parametrize(
    ("accept", "reads"),
    [
        (APOLLO_ACCEPT, True),
        ("multipart/mixed", True),
        ('multipart/mixed; deferSpec="20220824"', True),
        ("multipart/mixed;deferSpec=20990101, application/json", False),
        ("multipart/mixed;q=0, application/json", False),
        ("application/json", False),
        (None, False),
    ],
)
def test_which_clients_read_parts(accept: str | None, reads: bool) -> None:
    assert accepts_multipart(accept) is reads


def test_persisted_queries_and_the_access_log_see_a_deferred_operation() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(BffFormatter("json"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    failing = ServiceOptions(failure_rate=1.0, fail_status=503)
    apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(RATINGS)}}
    try:
        with (
            running_shop(ServiceSpec("reviews", failing)) as shop,
            running_gateway(gateway_settings(shop.urls)) as url,
        ):
            _, registered = read_parts(url, RATINGS, extensions=apq)
            ask = {"headers": {"X-Request-Id": "deferred-1"}, "extensions": apq}
            response, by_hash = read_parts(url, None, **ask)
            deadline = time.monotonic() + 10
            while '"deferred-1"' not in stream.getvalue() and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert response.status_code == 200
    assert [p.body for p in by_hash] == [p.body for p in registered]
    assert len(by_hash) > 1 and "errors" in by_hash[-1].body["incremental"][0]
    (line,) = [
        entry
        for entry in map(orjson.loads, stream.getvalue().splitlines())
        if entry.get("request_id") == "deferred-1" and "duration_ms" in entry
    ]
    assert line["operation"] == "Ratings" and line["status"] == 200
    assert line["document_hash"] == sha256_hex(RATINGS)
    # the deferred fragment's upstream call and its error are the request's too
    assert line["upstream_calls"] >= 4 and line["error_codes"] == ["UPSTREAM_UNAVAILABLE"]
