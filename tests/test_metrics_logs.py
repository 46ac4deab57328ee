"""Prometheus metrics (scraped and parsed, from one process and from two workers) and the JSON
access log (captured and parsed; a test plants every kind of secret and greps every line)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bff.http.state import RequestState
from bff.telemetry.current import Observed, forget, observe
from bff.telemetry.hub import Telemetry
from bff.telemetry.logs import ACCESS_LOGGER, BffFormatter, configure_logging, write_access
from bff.telemetry.metrics import OTHER, OperationLabels, rate_limited, route_of, status_class
from bff.telemetry.redaction import REDACTED, redact_headers, redact_text
from tests.support import DASHBOARD, SHOP_SCHEMA, GraphQLClient, gateway_settings, sign
from tests.test_workers import start, stop

SPEC_METRICS = {
    "bff_requests",
    "bff_request_duration_seconds",
    "bff_upstream_requests",
    "bff_upstream_duration_seconds",
    "bff_upstream_healthy",
    "bff_dataloader_batch_size",
    "bff_rate_limited",
}


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float, str]]]:
    """Samples by family name: (labels, value, sample name)."""
    text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    return {
        family.name: [(s.labels, s.value, s.name) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def value(samples: list[tuple[dict[str, str], float, str]], name: str, **labels: str) -> float:
    return sum(
        v for got, v, n in samples if n == name and all(got.get(k) == x for k, x in labels.items())
    )


def test_metrics_after_a_dashboard(gql: GraphQLClient, gateway_url: str) -> None:
    gql.data(DASHBOARD, {"first": 3}, token=sign())
    families = scrape(gateway_url)
    assert set(families) >= SPEC_METRICS
    requests = families["bff_requests"]
    assert (
        value(requests, "bff_requests_total", route="/graphql", operation="Dashboard", status="2xx")
        >= 1
    )
    duration = families["bff_request_duration_seconds"]
    buckets = {float(lab["le"]) for lab, _, n in duration if n.endswith("_bucket")}
    assert min(buckets) <= 0.001 and max(b for b in buckets if b != float("inf")) >= 10
    upstream = families["bff_upstream_requests"]
    for name in ("orders", "users", "catalog", "inventory", "reviews"):
        assert value(upstream, "bff_upstream_requests_total", upstream=name, status="2xx") >= 1
    users = {lab["instance"] for lab, _, _ in upstream if lab["upstream"] == "users"}
    assert users and all(i.startswith("http://127.0.0.1:") for i in users)
    batches = families["bff_dataloader_batch_size"]
    assert value(batches, "bff_dataloader_batch_size_count", upstream="catalog") >= 1
    healthy = families["bff_upstream_healthy"]
    assert value(healthy, "bff_upstream_healthy", upstream="users") == 2  # two instances up


def test_refused_requests_are_counted(gql: GraphQLClient, gateway_url: str) -> None:
    before = value(scrape(gateway_url)["bff_requests"], "bff_requests_total", status="4xx")
    response = gql.post("{ __typename }", token="not-a-token")
    assert response.status_code == 401
    after = value(scrape(gateway_url)["bff_requests"], "bff_requests_total", status="4xx")
    assert after == before + 1


def test_labels_are_bounded() -> None:
    labels = OperationLabels(limit=3)
    assert [labels(n) for n in ("A", "B", "C", "D", "A")] == ["A", "B", "C", OTHER, "A"]
    assert labels(None) == "anonymous"
    assert OperationLabels()("not a name; drop table") == OTHER
    assert route_of("/api/orders/12345") == "/api" and route_of("/graphqlx") == OTHER
    assert route_of("/secret/../x") == OTHER
    assert [status_class(s) for s in (200, 404, 503, 99)] == ["2xx", "4xx", "5xx", "other"]


def test_rate_limited_counts_inside_a_request_only(shop_settings_telemetry: Telemetry) -> None:
    telemetry = shop_settings_telemetry
    rate_limited("user")  # outside a request: nothing to count into, and no error
    token = observe(Observed(telemetry, RequestState("r1")))
    try:
        rate_limited("user")
        rate_limited("ip")
        rate_limited("made-up")
    finally:
        forget(token)
    text = telemetry.metrics.scrape().decode()
    assert 'bff_rate_limited_total{client_kind="user"} 1.0' in text
    assert 'bff_rate_limited_total{client_kind="ip"} 1.0' in text
    assert 'bff_rate_limited_total{client_kind="other"} 1.0' in text


@pytest.fixture
def shop_settings_telemetry(shop: object) -> Telemetry:
    return Telemetry(gateway_settings({}), SHOP_SCHEMA)


def test_two_workers_add_up_in_one_scrape(tmp_path: Path) -> None:
    gateway = start(tmp_path)
    try:
        sent = 24
        for _ in range(sent):  # a new connection each: the kernel spreads them over workers
            with httpx.Client(base_url=gateway.url, trust_env=False, timeout=10) as client:
                answer = client.post("/graphql", json={"query": "query Probe { __typename }"})
                assert answer.status_code == 200
        for _ in range(6):  # whichever worker answers the scrape counts every worker's requests
            samples = scrape(gateway.url)["bff_requests"]
            assert value(samples, "bff_requests_total", operation="Probe") == sent
    finally:
        stop(gateway.process)


# --- access log -----------------------------------------------------------------------------

PLANTED = {
    "token": sign(),
    "password": "hunter2-planted",
    "cookie": "session=cookie-planted-value",
    "api_key": "apikey-planted-123",
    "basic": "dXNlcjpiYXNpYy1wbGFudGVk",
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of the gateway, as `logging.format: json` writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(BffFormatter("json"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def access_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if "duration_ms" in line]


def line_of(stream: io.StringIO, request_id: str) -> dict[str, object]:
    """The one access line of `request_id` (written just after the response: wait for it)."""
    deadline = time.monotonic() + 10
    while True:
        found = [x for x in access_lines(stream) if x["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            (line,) = found
            return line
        time.sleep(0.02)


def test_one_access_line_per_request(
    gql: GraphQLClient, captured: io.StringIO, calls: object
) -> None:
    response = gql.post(DASHBOARD, {"first": 2}, token=sign(), headers={"X-Request-Id": "abc-1"})
    assert response.status_code == 200
    line = line_of(captured, "abc-1")
    assert set(line) == {
        "time", "method", "path", "operation", "client", "client_id", "status", "duration_ms",
        "upstream_calls", "error_codes", "trace_id", "request_id", "document_hash",
    }  # fmt: skip
    assert line["method"] == "POST" and line["path"] == "/graphql"
    assert line["operation"] == "Dashboard" and line["status"] == 200
    assert line["client"] == "127.0.0.1" and line["client_id"] == "user:1"
    assert line["upstream_calls"] == 5 and line["error_codes"] == []
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert isinstance(line["document_hash"], str) and len(line["document_hash"]) == 64
    assert str(line["time"]).endswith("Z")
    refused = gql.post("{ __typename }", token="garbage", headers={"X-Request-Id": "abc-2"})
    assert refused.status_code == 401
    line = line_of(captured, "abc-2")
    assert line["status"] == 401 and line["error_codes"] == ["UNAUTHENTICATED"]
    assert line["upstream_calls"] == 0


def test_no_secret_in_any_log_line(gateway_url: str, captured: io.StringIO) -> None:
    secrets = PLANTED
    headers = {
        "Authorization": f"Bearer {secrets['token']}",
        "Cookie": secrets["cookie"],
        "X-Api-Key": secrets["api_key"],
    }
    with httpx.Client(base_url=gateway_url, trust_env=False, timeout=10) as http:
        http.post(
            "/graphql",
            json={
                "query": "query L($u: String!, $p: String!) { user(id: $u) { name } }",
                "variables": {"u": "alice", "p": secrets["password"]},
            },
            headers=headers,
        )
        http.get(f"/graphql?query={{__typename}}&password={secrets['password']}", headers=headers)
        http.get(
            f"/api/x/token/{secrets['token']}",
            headers={"Authorization": f"Basic {secrets['basic']}"},
        )
        http.post(
            "/graphql",
            json={"query": "{ nope"},
            headers={"Authorization": "Bearer " + secrets["token"][:40]},
        )
    logging.getLogger("bff.errors").error(
        "upstream said Authorization: Bearer %s", secrets["token"]
    )
    for _ in range(500):
        if len(access_lines(captured)) >= 4:
            break
        time.sleep(0.02)
    text = captured.getvalue()
    assert len(access_lines(captured)) >= 4
    for secret in (*secrets.values(), secrets["token"][:40], "cookie-planted-value"):
        assert secret not in text


def test_redaction_helper() -> None:
    assert redact_text(f"Bearer {PLANTED['token']}") == f"Bearer {REDACTED}"
    assert PLANTED["token"] not in redact_text(f"token in text {PLANTED['token']} here")
    assert redact_text("password=hunter2&x=1") == f"password={REDACTED}&x=1"
    assert redact_text("/graphql") == "/graphql"
    headers = redact_headers(
        [(b"authorization", b"Bearer x"), (b"cookie", b"a=b"), (b"accept", b"*/*")]
    )
    assert headers == {"authorization": REDACTED, "cookie": REDACTED, "accept": "*/*"}


def test_fallbacks_to_graphql_core_are_counted(gql: GraphQLClient, gateway_url: str) -> None:
    """Introspection runs on plain graphql-core: a user sees it leave the fast path."""
    reason_of = "bff_graphql_fallbacks_total"
    before = value(scrape(gateway_url).get("bff_graphql_fallbacks", []), reason_of)
    gql.data("query Introspect { __schema { queryType { name } } }")
    gql.data("{ product(id: 1) { id } }")  # the fast path: not counted
    samples = scrape(gateway_url)["bff_graphql_fallbacks"]
    assert value(samples, reason_of) == before + 1
    assert any(labels["reason"] != "other" for labels, v, _ in samples if v)


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """Logging as `bff serve` sets it up, on a StringIO; the test's own setup restored after."""
    from bff.telemetry import logs

    root = logging.getLogger()
    saved, level, direct = list(root.handlers), root.level, logs._direct
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)
    logs._direct = direct


def test_access_lines_go_straight_to_the_configured_stream(configured: io.StringIO) -> None:
    """Under `bff serve`, the lines of one loop turn are one write, after the turn; other
    records still go through logging, to the same stream."""

    async def three_requests() -> tuple[str, str]:
        for number in range(3):
            write_access({"request_id": f"r{number}", "duration_ms": 1.0})
        before = configured.getvalue()
        await asyncio.sleep(0)
        return before, configured.getvalue()

    before, after = asyncio.run(three_requests())
    assert before == ""
    assert [line["request_id"] for line in access_lines(configured)] == ["r0", "r1", "r2"]
    logging.getLogger("bff.other").warning("kept apart")
    assert json.loads(configured.getvalue().splitlines()[-1])["message"] == "kept apart"
    assert after.count("\n") == 3


def test_access_lines_fall_back_to_logging_when_reconfigured(
    configured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    from bff.telemetry import logs

    assert logs._direct is not None
    logging.getLogger().removeHandler(logs._direct.handler)  # an app replaced the output
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        write_access({"request_id": "elsewhere", "duration_ms": 1.0})
    assert [json.loads(r.getMessage())["request_id"] for r in caplog.records] == ["elsewhere"]
    assert configured.getvalue() == ""
