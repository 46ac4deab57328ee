"""`Tracing.child`: spans under a sampled span are built without the tracer's per-span work,
and must be the spans the tracer would have built: SDK spans, seen by every span processor
from start to end, with the same trace, parent, flags, trace state, resource, scope and limits.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind

from bff.config.models import TelemetryConfig
from bff.telemetry import tracing as tracing_module
from bff.telemetry.otlp_encoder import encode_request
from bff.telemetry.tracing import SDK_METRICS_ENV, Tracing, incoming_context


class Recorder(SpanProcessor):
    """Any span processor: what it is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_start(self, span: sdk_trace.Span, parent_context: Context | None = None) -> None:
        self.events.append(("start", span.name))

    def on_end(self, span: ReadableSpan) -> None:
        self.events.append(("end", span.name))


def tracing(ratio: float = 1.0) -> tuple[Tracing, InMemorySpanExporter, Recorder]:
    exporter = InMemorySpanExporter()
    made = Tracing(TelemetryConfig(sample_ratio=ratio), SimpleSpanProcessor(exporter))
    recorder = Recorder()
    made.provider.add_span_processor(recorder)  # added after the tracer exists: still told
    return made, exporter, recorder


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_children_are_the_spans_the_tracer_would_make() -> None:
    made, exporter, recorder = tracing()
    remote = incoming_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "v=1")
    server = made.tracer.start_span("server", remote, SpanKind.SERVER)
    attributes = {"bff.upstream": "users", "bff.attempt": 1}
    ours = made.child("ours", server, SpanKind.CLIENT, attributes)
    theirs = made.tracer.start_span(
        "theirs", trace.set_span_in_context(server), SpanKind.CLIENT, attributes
    )
    assert type(ours) is not type(theirs) and isinstance(ours, sdk_trace.Span)
    for span in (ours, theirs):
        span.set_attribute("http.response.status_code", 200)
        span.end()
    server.end()
    spans = by_name(exporter)
    mine, sdk = spans["ours"], spans["theirs"]
    assert mine.parent == sdk.parent == server.get_span_context()
    assert mine.context.trace_id == sdk.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert mine.context.trace_flags == sdk.context.trace_flags
    assert mine.context.trace_state == sdk.context.trace_state and mine.context.trace_state
    assert mine.context.span_id not in (sdk.context.span_id, server.get_span_context().span_id)
    assert mine.context.is_remote is False
    assert mine.instrumentation_scope is sdk.instrumentation_scope
    assert mine.resource is sdk.resource
    assert ours._limits is theirs._limits  # type: ignore[attr-defined]
    assert dict(mine.attributes or {}) == dict(sdk.attributes or {})
    assert mine.kind is sdk.kind is SpanKind.CLIENT
    assert (mine.start_time or 0) <= (mine.end_time or 0)
    assert ("start", "ours") in recorder.events and ("end", "ours") in recorder.events
    # and every field the OTLP export carries, but for the name, the span id and the times
    exported = []
    for span in (mine, sdk):
        (message,) = ExportTraceServiceRequest.FromString(encode_request([span])).resource_spans
        encoded = message.scope_spans[0].spans[0]
        for field in ("name", "span_id", "start_time_unix_nano", "end_time_unix_nano"):
            encoded.ClearField(field)
        exported.append(message)
    assert exported[0] == exported[1]


def test_children_nest_and_are_told_to_every_processor() -> None:
    made, exporter, recorder = tracing()
    server = made.tracer.start_span("server", kind=SpanKind.SERVER)
    with trace.use_span(server, end_on_exit=True):
        with made.span("operation") as operation, made.span("batch") as batch:
            assert trace.get_current_span() is batch
            made.child("call", batch, SpanKind.CLIENT).end()
        assert operation.is_recording() is False
    spans = by_name(exporter)
    assert spans["call"].parent == spans["batch"].context
    assert spans["batch"].parent == spans["operation"].context
    assert spans["operation"].parent == spans["server"].context
    assert recorder.events == [
        ("start", "server"),
        ("start", "operation"),
        ("start", "batch"),
        ("start", "call"),
        ("end", "call"),
        ("end", "batch"),
        ("end", "operation"),
        ("end", "server"),
    ]


def test_under_an_unsampled_or_ended_parent_the_tracer_decides() -> None:
    made, exporter, _ = tracing(ratio=0.0)
    server = made.tracer.start_span("server", kind=SpanKind.SERVER)
    assert not server.is_recording()
    child = made.child("child", server)
    assert isinstance(child, NonRecordingSpan) and not child.is_recording()
    assert child.get_span_context().trace_id == server.get_span_context().trace_id
    made, exporter, _ = tracing()
    ended = made.tracer.start_span("ended")
    ended.end()
    late = made.child("late", ended)
    late.end()
    assert type(late).__name__ == "_Span"  # the tracer's own
    assert by_name(exporter)["late"].parent == ended.get_span_context()


def test_with_the_sdks_span_metrics_on_every_span_goes_through_the_tracer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SDK_METRICS_ENV, "true")
    made, exporter, _ = tracing()
    server = made.tracer.start_span("server")
    child = made.child("child", server)
    assert type(child).__name__ == "_Span"
    child.end()
    assert by_name(exporter)["child"].parent == server.get_span_context()


def test_an_sdk_whose_span_takes_other_arguments_gets_the_tracer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing_module, "SPAN_ARGUMENTS", ("self", "name", "something_else"))
    made, exporter, _ = tracing()
    server = made.tracer.start_span("server")
    child = made.child("child", server)
    assert type(child).__name__ == "_Span"
    child.end()
    assert by_name(exporter)["child"].parent == server.get_span_context()
