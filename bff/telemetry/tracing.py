"""The tracer of one app: sampler, exporter and the batching between them.

Spans are exported by a `BatchSpanProcessor`: ending a span puts it in a bounded queue and a
background thread exports batches, so a request never waits for the collector, and a collector
that is down costs dropped spans and a warning in the log, never latency or memory growth.
Sampling is parent-based: an incoming `traceparent` decides for the whole trace, else
`telemetry.sample_ratio` does (by trace id, so every span of a trace agrees).

`Tracing.span(...)` starts a child of the current span, made current while it lasts (so spans
below, in tasks too, find their parent), and ended at exit; `Tracing.child(...)` starts one
that is not made current (a client span). The server span is the tracer's own (its trace's
sampling decision is made there); below it, a child of a span that is sampled needs no
decision: ParentBased's answer for a local sampled parent is always "record and sample", with
the parent's trace state. So `child` builds that span itself, an SDK `Span` as the tracer
would have built it (same processors, resource, scope, limits and id generator), without the
tracer's per-span work: asking the sampler, looking the parent up again in the context, the
flags and the internal metrics. That is about a third of what a span costs to start. With
the SDK's internal metrics turned on (`OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`), which count
spans at the tracer, or an SDK whose span constructor changed, every span goes through the
tracer instead.
"""

from __future__ import annotations

import inspect
import logging
import os
from types import TracebackType
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from bff.config.models import TelemetryConfig

log = logging.getLogger("bff.telemetry")

QUEUE_SIZE = 4096  # spans waiting for export; past it new spans are dropped (bounded memory)
BATCH_SIZE = 512
EXPORT_DELAY_MS = 1000
EXPORT_TIMEOUT_S = 5.0
PROPAGATOR = TraceContextTextMapPropagator()
SDK_METRICS_ENV = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
# `Tracing.child` passes the SDK span's arguments by position (keywords cost a tenth of a
# span): only while its constructor takes them in this order; else the tracer makes them all
SPAN_ARGUMENTS = (
    "self", "name", "context", "parent", "sampler", "trace_config", "resource", "attributes",
    "events", "links", "kind", "span_processor", "instrumentation_info", "record_exception",
    "set_status_on_exception", "limits", "instrumentation_scope",
)  # fmt: skip


def make_exporter(config: TelemetryConfig) -> SpanExporter | None:
    """The exporter `telemetry.exporter` names; `None` for `none` (tracing off)."""
    endpoint = str(config.endpoint).rstrip("/")
    if config.exporter == "otlp_http":
        from bff.telemetry.otlp import OtlpHttpExporter

        return OtlpHttpExporter(f"{endpoint}/v1/traces", timeout=EXPORT_TIMEOUT_S)
    if config.exporter == "otlp_grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        target = endpoint.split("://", 1)[1]
        insecure = endpoint.startswith("http://")
        return GrpcSpanExporter(endpoint=target, insecure=insecure, timeout=EXPORT_TIMEOUT_S)
    if config.exporter == "console":
        return ConsoleSpanExporter(service_name=config.service_name)
    return None


class Tracing:
    """A tracer provider of our own (never the global one: each app has its settings)."""

    def __init__(self, config: TelemetryConfig, processor: SpanProcessor) -> None:
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        resource = Resource.create({"service.name": config.service_name})
        self.limits = SpanLimits()  # from the OTEL_*_LIMIT environment, as the SDK's default
        self.provider = TracerProvider(
            sampler=sampler, resource=resource, span_limits=self.limits, shutdown_on_exit=False
        )
        self.provider.add_span_processor(processor)
        self.tracer = tracer = cast(sdk_trace.Tracer, self.provider.get_tracer("bff"))
        # the tracer's scope object itself when it shows it: spans of one scope stay one group
        self.scope: InstrumentationScope = getattr(
            tracer, "_instrumentation_scope", None
        ) or InstrumentationScope("bff")
        self._direct = (
            os.environ.get(SDK_METRICS_ENV, "").strip().lower() != "true"
            and tuple(inspect.signature(sdk_trace.Span.__init__).parameters)[:17] == SPAN_ARGUMENTS
        )
        self._sampler, self._resource = tracer.sampler, tracer.resource
        self._processor, self._ids = tracer.span_processor, tracer.id_generator
        self._info = tracer.instrumentation_info

    @classmethod
    def from_config(
        cls, config: TelemetryConfig, exporter: SpanExporter | None = None
    ) -> Tracing | None:
        """Tracing per config, or with `exporter` (tests); `None` when the exporter is `none`."""
        exporter = exporter or make_exporter(config)
        if exporter is None:
            return None
        processor = BatchSpanProcessor(
            exporter,
            max_queue_size=QUEUE_SIZE,
            max_export_batch_size=BATCH_SIZE,
            schedule_delay_millis=EXPORT_DELAY_MS,
            export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
        )
        return cls(config, processor)

    def child(
        self,
        name: str,
        parent: Span,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """A started span under `parent` (a span of this app's request), not made current."""
        context = parent.get_span_context()
        if (
            self._direct
            and isinstance(parent, sdk_trace.Span)
            and parent.is_recording()
            and context.trace_flags.sampled
        ):
            span = _ChildSpan(  # by position: SPAN_ARGUMENTS
                name,
                SpanContext(
                    context.trace_id,
                    self._ids.generate_span_id(),
                    False,
                    context.trace_flags,
                    context.trace_state,
                ),
                context,
                self._sampler,
                None,
                self._resource,
                attributes,
                None,
                (),
                kind,
                self._processor,
                self._info,
                True,
                True,
                self.limits,
                self.scope,
            )
            span.start()
            return span
        return self.tracer.start_span(name, trace.set_span_in_context(parent), kind, attributes)

    def span(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        parent: Span | None = None,
    ) -> SpanScope:
        """A child span of `parent` (the current span when not given), current until exit."""
        return SpanScope(self.child(name, parent or trace.get_current_span(), kind, attributes))

    def flush(self, timeout_s: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()


class _ChildSpan(sdk_trace.Span):
    """The SDK's span, built by `Tracing.child` (the SDK's own is `_Span`, built by its tracer)."""


class SpanScope:
    """`with`: the span is current inside, ended (with an error status on exception) after."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        if exc is not None and self.span.is_recording():
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.span.end()


def current_span() -> Span:
    return trace.get_current_span()


_HEADS: dict[int, str] = {}  # trace id -> "00-{trace id}-": a trace's calls format it once


def traceparent(span: Span) -> tuple[str, str]:
    """The W3C `traceparent` and `tracestate` values that continue `span`'s trace."""
    ctx = span.get_span_context()
    trace_id = ctx.trace_id
    head = _HEADS.get(trace_id)
    if head is None:
        if len(_HEADS) >= 1024:
            _HEADS.clear()
        head = _HEADS[trace_id] = f"00-{trace_id:032x}-"
    state = ctx.trace_state
    state_header = "" if state is DEFAULT_TRACE_STATE or not state else state.to_header()
    return f"{head}{ctx.span_id:016x}-{ctx.trace_flags:02x}", state_header


def incoming_context(traceparent: str, tracestate: str | None) -> otel_context.Context:
    """The remote parent a client sent (an invalid header gives a fresh root)."""
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return PROPAGATOR.extract(carrier)
