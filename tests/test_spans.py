"""Our recording spans (`LiveSpan`, started by `Tracing`) must be the spans the SDK's tracer
would make: same trace, parent, flags, trace state, sampling, resource, scope, attributes under
the same limits, status rules, events and links, and the same bytes on the OTLP wire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode

from bff.config.models import TelemetryConfig
from bff.telemetry.otlp_encoder import encode_request
from bff.telemetry.spans import LiveSpan
from bff.telemetry.tracing import Tracing, incoming_context

SAMPLED_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


class Twins:
    """Our tracing and the SDK's tracer, set up alike, each exporting to memory."""

    def __init__(self, ratio: float = 1.0) -> None:
        config = TelemetryConfig(sample_ratio=ratio)
        self.ours_out, self.sdk_out = InMemorySpanExporter(), InMemorySpanExporter()
        self.ours = Tracing(config, SimpleSpanProcessor(self.ours_out))
        provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(ratio)),
            resource=Resource.create({"service.name": config.service_name}),
            span_limits=SpanLimits(),
        )
        provider.add_span_processor(SimpleSpanProcessor(self.sdk_out))
        self.sdk = provider.get_tracer("bff")

    def both(
        self,
        script: Callable[[Span], None],
        context: Context | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> tuple[ReadableSpan, ReadableSpan]:
        """`script` run on a span of each, started alike; their exported spans."""
        ours = self.ours.start("span", context, SpanKind.CLIENT, attributes)
        theirs = self.sdk.start_span("span", context, SpanKind.CLIENT, attributes)
        assert type(ours) is LiveSpan
        for span in (ours, theirs):
            script(span)
            span.end()
        (mine,), (sdk,) = self.ours_out.get_finished_spans(), self.sdk_out.get_finished_spans()
        self.ours_out.clear()
        self.sdk_out.clear()
        return mine, sdk


def assert_alike(mine: ReadableSpan, sdk: ReadableSpan) -> None:
    assert (mine.name, mine.kind, mine.parent) == (sdk.name, sdk.kind, sdk.parent)
    assert mine.context.trace_flags == sdk.context.trace_flags
    assert mine.context.trace_state == sdk.context.trace_state
    assert mine.context.is_remote is sdk.context.is_remote is False
    assert dict(mine.attributes or {}) == dict(sdk.attributes or {})
    assert mine.dropped_attributes == sdk.dropped_attributes
    assert (mine.status.status_code, mine.status.description) == (
        sdk.status.status_code,
        sdk.status.description,
    )
    assert [(e.name, dict(e.attributes or {})) for e in mine.events] == [
        (e.name, dict(e.attributes or {})) for e in sdk.events
    ]
    assert [(li.context, dict(li.attributes or {})) for li in mine.links] == [
        (li.context, dict(li.attributes or {})) for li in sdk.links
    ]
    assert mine.resource.attributes == sdk.resource.attributes
    assert mine.instrumentation_scope == sdk.instrumentation_scope
    assert 0 < (mine.start_time or 0) <= (mine.end_time or 0)
    # and on the wire, but for the ids and the times
    exported = []
    for span in (mine, sdk):
        (message,) = ExportTraceServiceRequest.FromString(encode_request([span])).resource_spans
        encoded = message.scope_spans[0].spans[0]
        for field in ("trace_id", "span_id", "start_time_unix_nano", "end_time_unix_nano"):
            encoded.ClearField(field)
        for event in encoded.events:
            event.ClearField("time_unix_nano")
            for pair in event.attributes:
                if pair.key == "exception.stacktrace":  # the frames differ: a line each
                    pair.value.string_value = ""
        exported.append(message)
    assert exported[0] == exported[1]


def set_everything(span: Span) -> None:
    span.set_attribute("http.response.status_code", 200)
    span.set_attributes({"bff.instance": "http://10.0.0.1:80", "bff.ratio": 0.5, "ok": True})
    span.set_attribute("tags", ["a", "b"])
    span.set_attribute("", "an empty key is refused")
    span.update_name("renamed")
    span.add_event("retry", {"bff.attempt": 2})
    span.add_link(SpanContext(7, 9, False), {"why": "batched"})
    span.set_status(Status(StatusCode.ERROR, "boom"))


def test_a_span_with_everything_set_is_the_sdks() -> None:
    twins = Twins()
    mine, sdk = twins.both(set_everything, attributes={"http.request.method": "GET"})
    assert mine.name == "renamed" and mine.attributes["tags"] == ("a", "b")  # type: ignore[index]
    assert_alike(mine, sdk)


def test_an_incoming_trace_is_continued_as_the_sdk_continues_it() -> None:
    twins = Twins(ratio=0.0)  # the incoming sampled flag decides, not the ratio
    remote = incoming_context(SAMPLED_PARENT, "vendor=1")
    mine, sdk = twins.both(set_everything, remote)
    assert mine.context.trace_id == sdk.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert mine.parent is not None and mine.parent.span_id == 0x00F067AA0BA902B7
    assert mine.context.trace_state.to_header() == "vendor=1"
    assert_alike(mine, sdk)


@pytest.mark.parametrize(
    ("ratio", "header"), [(0.0, None), (1.0, UNSAMPLED_PARENT), (0.0, UNSAMPLED_PARENT)]
)
def test_a_trace_not_sampled_records_nothing(ratio: float, header: str | None) -> None:
    twins = Twins(ratio)
    context = incoming_context(header, None) if header else None
    ours = twins.ours.start("server", context, SpanKind.SERVER)
    theirs = twins.sdk.start_span("server", context, SpanKind.SERVER)
    assert isinstance(ours, NonRecordingSpan) and not ours.is_recording()
    assert not theirs.is_recording()
    made = ours.get_span_context()
    assert made.is_valid and made.trace_flags == theirs.get_span_context().trace_flags
    if header:
        assert made.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    child = twins.ours.child("child", ours)
    assert not child.is_recording()
    assert child.get_span_context().trace_id == made.trace_id
    child.end()
    ours.end()
    assert twins.ours_out.get_finished_spans() == ()


def test_children_nest_under_their_parents() -> None:
    twins = Twins()
    server = twins.ours.start("server", None, SpanKind.SERVER)
    with trace.use_span(server, end_on_exit=True):
        with twins.ours.span("operation") as operation, twins.ours.span("batch") as batch:
            assert trace.get_current_span() is batch
            twins.ours.child("call", batch, SpanKind.CLIENT).end()
        assert operation.is_recording() is False
    spans = {span.name: span for span in twins.ours_out.get_finished_spans()}
    assert [span.name for span in twins.ours_out.get_finished_spans()] == [
        "call",
        "batch",
        "operation",
        "server",
    ]
    assert spans["server"].parent is None
    assert spans["operation"].parent == spans["server"].context
    assert spans["batch"].parent == spans["operation"].context
    assert spans["call"].parent == spans["batch"].context
    ids = {span.context.span_id for span in spans.values()}
    assert len(ids) == 4 and {span.context.trace_id for span in spans.values()} == {
        spans["server"].context.trace_id
    }
    # a child's flags and state are its parent's, as ParentBased gives them
    assert spans["call"].context.trace_flags == spans["server"].context.trace_flags


def test_the_child_of_an_ended_span_is_still_its_child() -> None:
    twins = Twins()
    ended = twins.ours.start("ended")
    ended.end()
    late = twins.ours.child("late", ended)
    late.end()
    spans = {span.name: span for span in twins.ours_out.get_finished_spans()}
    assert spans["late"].parent == ended.get_span_context()


def test_the_span_limits_hold_as_in_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    twins = Twins()

    def script(span: Span) -> None:
        span.set_attributes({"a": "long value", "b": 2, "c": ["xxxxxx"], "d": 4})
        span.set_attribute("a", "replaced, still cut")
        span.set_attribute("e", 5)
        span.add_event("one")
        span.add_event("two")

    mine, sdk = twins.both(script, attributes={"first": "x" * 10})
    # the SDK's rule: the oldest attribute makes way for a new one
    assert dict(mine.attributes or {}) == {"d": 4, "a": "repl", "e": 5}
    assert mine.dropped_attributes == 4 and [e.name for e in mine.events] == ["two"]
    assert_alike(mine, sdk)


def test_status_rules_are_the_sdks() -> None:
    twins = Twins()

    def script(span: Span) -> None:
        span.set_status(StatusCode.UNSET)
        span.set_status(StatusCode.ERROR, "first")
        span.set_status(Status(StatusCode.OK))
        span.set_status(Status(StatusCode.ERROR, "after ok"))

    mine, sdk = twins.both(script)
    assert mine.status.status_code is StatusCode.OK
    assert_alike(mine, sdk)


def test_an_exception_leaving_a_span_is_recorded_as_by_the_sdk() -> None:
    twins = Twins()

    def script(span: Span) -> None:
        with pytest.raises(ValueError), span:
            raise ValueError("no such user")

    mine, sdk = twins.both(script)
    (event,) = mine.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert "no such user" in str(event.attributes["exception.stacktrace"])
    assert mine.status.description == "ValueError: no such user"
    assert_alike(mine, sdk)


def test_an_ended_span_changes_no_more_and_is_exported_once() -> None:
    twins = Twins()

    def script(span: Span) -> None:
        span.set_attribute("before", 1)
        span.end()
        span.set_attribute("after", 1)
        span.set_attributes({"after too": 1})
        span.update_name("late name")
        span.set_status(StatusCode.ERROR)
        span.add_event("late")

    mine, sdk = twins.both(script)  # `both` ends it again
    assert mine.name == "span" and dict(mine.attributes or {}) == {"before": 1}
    assert not mine.events and mine.status.status_code is StatusCode.UNSET
    assert_alike(mine, sdk)
