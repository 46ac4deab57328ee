"""Traces end to end: spans exported over OTLP/HTTP to a real receiver, decoded and checked.

The Dashboard's tree (server span, operation span, one batch span per upstream per level, one
client span per attempt), the traceparent the sample services receive, a trace continued from
a client, and parent-based sampling (with the SDK's in-memory exporter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from graphql import GraphQLError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bff.app import create_app
from bff.http.state import RequestState
from bff.rendering.errors import format_error
from bff.serving import BackgroundServer
from bff.telemetry.current import Observed, forget, observe
from bff.telemetry.hub import Telemetry
from bff.telemetry.transport import TracingTransport
from bff.upstream import Instance, UpstreamPool
from bff.upstream.request import build_request
from services import RunningServices
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support import (
    DASHBOARD,
    SHOP_SCHEMA,
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    sign,
)

SERVER, CLIENT = 2, 3  # OTLP span kinds
DASHBOARD_SPANS = 1 + 1 + 4 + 5  # server, operation, 4 batches, 5 client calls


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(shop: RunningServices, receiver: OtlpReceiver) -> Iterator[GraphQLClient]:
    settings = gateway_settings(
        shop.urls, telemetry={"exporter": "otlp_http", "endpoint": receiver.url}
    )
    with BackgroundServer(create_app(settings)) as server:
        client = GraphQLClient(server.url)
        yield client
        client.close()


def dashboard_trace(
    traced: GraphQLClient, receiver: OtlpReceiver, headers: dict[str, str] | None = None
) -> list[ReceivedSpan]:
    response = traced.post(DASHBOARD, {"first": 3}, token=sign(), headers=headers)
    assert response.status_code == 200 and "errors" not in response.json()
    request_id = response.headers["x-request-id"]
    trace_id = ""
    for _ in range(200):
        roots = [s for s in receiver.spans if s.attributes.get("bff.request_id") == request_id]
        if roots:
            trace_id = roots[0].trace_id
            break
        receiver.trace("", 1, timeout=0.1)
    assert trace_id, "the server span was not exported"
    return receiver.trace(trace_id, DASHBOARD_SPANS)


def test_dashboard_span_tree(
    traced: GraphQLClient, receiver: OtlpReceiver, shop: RunningServices
) -> None:
    spans = dashboard_trace(traced, receiver)
    assert len(spans) == DASHBOARD_SPANS
    by_id = {s.span_id: s for s in spans}
    (server,) = [s for s in spans if s.parent_id == ""]
    assert (server.name, server.kind, server.service) == ("POST /graphql", SERVER, "bff")
    assert server.attributes["http.response.status_code"] == 200
    (operation,) = [s for s in spans if s.parent_id == server.span_id]
    assert operation.name == "query Dashboard"
    assert operation.attributes["graphql.operation.type"] == "query"
    assert operation.attributes["graphql.operation.name"] == "Dashboard"
    assert len(operation.attributes["graphql.document.hash"]) == 64
    assert operation.attributes["bff.graphql.error_count"] == 0
    batches = [s for s in spans if s.name.startswith("dataloader ")]
    assert sorted(s.attributes["bff.upstream"] for s in batches) == [
        "catalog", "inventory", "reviews", "users",
    ]  # fmt: skip
    assert all(s.parent_id == operation.span_id for s in batches)
    assert {s.attributes["bff.upstream"]: s.attributes["bff.batch.size"] for s in batches} == {
        "users": 3, "catalog": 7, "inventory": 7, "reviews": 7,
    } or all(s.attributes["bff.batch.size"] >= 1 for s in batches)  # fmt: skip
    calls = [s for s in spans if s.kind == CLIENT]
    assert sorted(s.attributes["bff.upstream"] for s in calls) == [
        "catalog", "inventory", "orders", "reviews", "users",
    ]  # fmt: skip
    for call in calls:
        upstream = call.attributes["bff.upstream"]
        parent = by_id[call.parent_id]
        if upstream == "orders":  # the list call is the resolver's own, not a batch
            assert parent is operation
        else:
            assert parent.name == f"dataloader {upstream}"
        assert call.name == "GET" and call.attributes["http.request.method"] == "GET"
        assert call.attributes["bff.attempt"] == 1
        assert call.attributes["http.response.status_code"] == 200
        assert call.attributes["bff.instance"] in shop.urls[upstream]
        assert call.attributes["url.full"].startswith(call.attributes["bff.instance"] + "/")


def test_services_receive_the_trace(
    traced: GraphQLClient, receiver: OtlpReceiver, calls: UpstreamCalls
) -> None:
    spans = dashboard_trace(traced, receiver)
    for upstream in ("orders", "catalog", "users"):
        header = calls.last_headers(upstream)["traceparent"]
        version, trace_id, parent_id, flags = header.split("-")
        (span,) = [
            s for s in spans if s.kind == CLIENT and s.attributes["bff.upstream"] == upstream
        ]
        assert (version, trace_id, parent_id) == ("00", span.trace_id, span.span_id)
        assert int(flags, 16) & 1 == 1  # sampled (bit 1 may say the id is random)


def test_a_client_trace_is_continued(
    traced: GraphQLClient, receiver: OtlpReceiver, calls: UpstreamCalls
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "tracestate": "vendor=abc"}
    spans = dashboard_trace(traced, receiver, headers)
    (server,) = [s for s in spans if s.kind == SERVER]
    assert (server.trace_id, server.parent_id) == (trace_id, parent_id)
    seen = calls.last_headers("catalog")
    assert seen["traceparent"].split("-")[1] == trace_id
    assert seen["tracestate"] == "vendor=abc"


def in_memory_gateway(
    shop: RunningServices, ratio: float
) -> tuple[BackgroundServer, Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    settings = gateway_settings(shop.urls, telemetry={"sample_ratio": ratio})
    telemetry = Telemetry(settings, SHOP_SCHEMA, exporter=exporter)
    return BackgroundServer(create_app(settings, telemetry=telemetry)), telemetry, exporter


def test_parent_based_sampling(shop: RunningServices, calls: UpstreamCalls) -> None:
    server, telemetry, exporter = in_memory_gateway(shop, ratio=1.0)
    with server:
        client = GraphQLClient(server.url)
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        unsampled = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-00"}
        assert client.post(DASHBOARD, {"first": 2}, token=sign(), headers=unsampled).is_success
        assert telemetry.tracing is not None and telemetry.tracing.flush()
        assert exporter.get_finished_spans() == ()  # the caller did not sample: nor do we
        header = calls.last_headers("catalog")["traceparent"]
        assert header.split("-")[1] == trace_id  # still propagated
        assert int(header.split("-")[3], 16) & 1 == 0
        client.data(DASHBOARD, {"first": 2}, token=sign())
        assert telemetry.tracing.flush()
        names = [s.name for s in exporter.get_finished_spans()]
        assert names.count("query Dashboard") == 1 and names.count("POST /graphql") == 1
        client.close()


def test_ratio_zero_exports_nothing_but_keeps_trace_ids(
    shop: RunningServices, calls: UpstreamCalls
) -> None:
    server, telemetry, exporter = in_memory_gateway(shop, ratio=0.0)
    with server:
        client = GraphQLClient(server.url)
        client.data(DASHBOARD, {"first": 2}, token=sign())
        assert telemetry.tracing is not None and telemetry.tracing.flush()
        assert exporter.get_finished_spans() == ()
        flags = calls.last_headers("orders")["traceparent"].split("-")[3]
        assert int(flags, 16) & 1 == 0  # not sampled, and says so downstream
        client.close()


def test_masked_errors_carry_the_trace_id(caplog: pytest.LogCaptureFixture) -> None:
    error = GraphQLError("boom", path=["orders"], original_error=RuntimeError("db password x"))
    with caplog.at_level(logging.ERROR, logger="bff.errors"):
        body = format_error(error, "4bf92f3577b34da6a3ce929d0e0e4736")
    assert body["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    assert body["message"] == "Internal server error"
    (record,) = caplog.records
    assert record.__dict__["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    exposed = format_error(GraphQLError("bad", original_error=None), "abc")
    assert "traceId" not in exposed["extensions"]  # only masked errors need the pointer


def test_a_collector_that_is_down_costs_a_warning_not_the_request(
    shop: RunningServices, caplog: pytest.LogCaptureFixture
) -> None:
    settings = gateway_settings(
        shop.urls, telemetry={"exporter": "otlp_http", "endpoint": "http://127.0.0.1:9"}
    )
    telemetry = Telemetry(settings, SHOP_SCHEMA)
    with BackgroundServer(create_app(settings, telemetry=telemetry)) as server:
        client = GraphQLClient(server.url)
        with caplog.at_level(logging.WARNING, logger="bff.telemetry"):
            assert client.data(DASHBOARD, {"first": 2}, token=sign())["orders"]["nodes"]
            assert telemetry.tracing is not None
            telemetry.tracing.flush()
        client.close()
    assert any("trace export to 127.0.0.1:9/v1/traces failed" in r.message for r in caplog.records)


def test_one_client_span_per_attempt(shop: RunningServices, calls: UpstreamCalls) -> None:
    """What a retry layer above the telemetry layer will do: each try is its own span."""
    exporter = InMemorySpanExporter()
    settings = gateway_settings(shop.urls)
    telemetry = Telemetry(settings, SHOP_SCHEMA, exporter=exporter)
    assert telemetry.tracing is not None
    pool = UpstreamPool("catalog", [Instance(u) for u in shop.urls["catalog"]])
    transport = TracingTransport(pool.transport, "catalog")

    async def two_attempts() -> RequestState:
        state = RequestState("attempts")
        token = observe(Observed(telemetry, state))
        try:
            with telemetry.tracing.span("batch"):  # type: ignore[union-attr]
                request = build_request("GET", "/products", params={"ids": "1,2"})
                deadline = asyncio.get_running_loop().time() + 5
                for attempt in (1, 2):
                    assert (await transport.send(request, deadline, attempt)).status == 200
        finally:
            forget(token)
            await pool.aclose()
        return state

    state = asyncio.run(two_attempts())
    assert state.upstream_calls == 2
    assert telemetry.tracing.flush()
    spans = exporter.get_finished_spans()
    (parent,) = [s for s in spans if s.name == "batch"]
    attempts = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert [s.attributes["bff.attempt"] for s in attempts] == [1, 2]
    assert all(
        s.parent is not None and s.parent.span_id == parent.context.span_id for s in attempts
    )
    assert len({s.context.span_id for s in attempts}) == 2
    sent = calls.last_headers("catalog")["traceparent"].split("-")
    assert sent[2] == f"{attempts[1].context.span_id:016x}"  # the second try's own span id


def test_current_span_is_the_api_s_current_span() -> None:
    """`current_span` reads the context variable itself: the same span as OpenTelemetry's
    own lookup, outside any span and inside one."""
    from opentelemetry import context, trace
    from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext

    from bff.telemetry.tracing import current_span

    assert current_span() is trace.get_current_span() is INVALID_SPAN
    span = NonRecordingSpan(SpanContext(trace_id=7, span_id=9, is_remote=False))
    token = context.attach(trace.set_span_in_context(span))
    try:
        assert current_span() is span
        assert trace.get_current_span() is span
    finally:
        context.detach(token)
    assert current_span() is INVALID_SPAN
