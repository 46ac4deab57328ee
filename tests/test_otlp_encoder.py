"""Our OTLP protobuf encoder against the SDK's: both outputs decoded with the official
`opentelemetry-proto` classes must be the same message, whatever the spans hold.

The one difference allowed: our `Span.flags` carry the W3C trace flags in their low byte (OTLP
allows it; the SDK leaves them out), so that byte is checked, then masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from bench.otlp_encoding import dashboard_spans
from bff.telemetry import otlp_encoder
from bff.telemetry.otlp_encoder import encode_request


def provider(
    exporter: InMemorySpanExporter, resource: Resource | None = None, **kw: object
) -> TracerProvider:
    made = TracerProvider(resource=resource or Resource.create({"service.name": "bff"}), **kw)  # type: ignore[arg-type]
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made


def assert_same(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    ours = ExportTraceServiceRequest.FromString(encode_request(spans))
    theirs = encode_spans(spans)
    for resource_spans in ours.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                assert span.flags & 0x100  # the has-is-remote bit, as the SDK sets it
                span.flags &= ~0xFF  # the W3C trace flags: ours only
    assert ours == theirs
    return ours


def test_every_field_the_sdk_writes() -> None:
    exporter = InMemorySpanExporter()
    tracer = provider(exporter).get_tracer(
        "bff", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.26.0"
    )
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "abc"), ("other", "xyz")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    attributes = {
        "s": "text",
        "empty": "",
        "unicode": "größe ✓",
        "long": "x" * 300,
        "b": True,
        "f": False,
        "n": 3,
        "zero": 0,
        "negative": -7,
        "big": 2**62,
        "float": 0.5,
        "bytes": b"\x00\xff",
        "strings": ["p", "q"],
        "ints": (1, 2, 3),
        "floats": [1.5],
        "bools": [True, False],
        "none_inside": [],
    }
    with tracer.start_as_current_span(
        "server", parent, kind=SpanKind.SERVER, attributes=attributes
    ):
        linked = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
        span = tracer.start_span(
            "GET", kind=SpanKind.CLIENT, links=[Link(linked, {"why": "retry"})]
        )
        span.add_event("retry", {"attempt": 2, "reason": "reset"})
        span.add_event("plain")
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
        for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
            ok = tracer.start_span(kind.name.lower(), kind=kind)
            ok.set_status(Status(StatusCode.OK))
            ok.end()
    decoded = assert_same(exporter.get_finished_spans())
    spans = decoded.resource_spans[0].scope_spans[0].spans
    assert spans[0].trace_state == "vendor=abc,other=xyz"  # the parent's, inherited
    assert len(spans) == 5


def test_dropped_counts() -> None:
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1)
    tracer = provider(exporter, span_limits=limits).get_tracer("bff")
    links = [Link(SpanContext(k + 1, k + 1, is_remote=True)) for k in range(3)]
    span = tracer.start_span("s", attributes={"a": 1, "b": 2, "c": 3}, links=links)
    span.add_event("e0")
    span.add_event("e1", {"x": 1, "y": 2})  # e0 is dropped, and y
    span.end()
    decoded = assert_same(exporter.get_finished_spans())
    (encoded,) = decoded.resource_spans[0].scope_spans[0].spans
    assert (encoded.dropped_attributes_count, encoded.dropped_events_count) == (1, 1)
    assert encoded.dropped_links_count == 2
    assert encoded.events[0].dropped_attributes_count == 1


def test_spans_of_several_resources_and_scopes() -> None:
    exporter = InMemorySpanExporter()
    one = provider(exporter)
    other = provider(
        exporter, Resource.create({"service.name": "other", "replica": 2}, schema_url="https://x/1")
    )
    for tracer in (one.get_tracer("a"), other.get_tracer("b", "0.1"), one.get_tracer("c")):
        for name in ("first", "second"):
            tracer.start_span(name).end()
    one.get_tracer("a").start_span("again").end()  # back to the first group
    decoded = assert_same(exporter.get_finished_spans())
    assert [len(r.scope_spans) for r in decoded.resource_spans] == [2, 1]


def test_dashboard_spans_and_a_full_cache() -> None:
    spans = dashboard_spans(3)
    assert len(spans) == 33
    for _ in range(2):  # the second time from the cache
        assert_same(spans)


def test_the_caches_start_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_encoder, "CACHE_LIMIT", 5)
    for cache in ("_NAMES", "_STR_PAIRS", "_INT_PAIRS"):
        monkeypatch.setattr(otlp_encoder, cache, {})
    spans = dashboard_spans(4)
    for _ in range(3):
        assert_same(spans)
    assert len(otlp_encoder._STR_PAIRS) <= 5 and len(otlp_encoder._NAMES) <= 5


def test_the_fast_path_reads_this_sdks_spans() -> None:
    assert otlp_encoder.LAYOUT_OK  # else every test above compared the SDK with itself


def test_an_sdk_whose_spans_changed_gets_the_sdks_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_encoder, "LAYOUT_OK", False)
    spans = dashboard_spans(1)
    assert encode_request(spans) == encode_spans(spans).SerializeToString()
