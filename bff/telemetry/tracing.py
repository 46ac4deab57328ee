"""The tracer of one app: sampler, span recording, and the batched export behind them.

Ended spans go to a `SpanQueue`: a bounded queue a background thread exports in batches, so a
request never waits for the collector, and a collector that is down costs dropped spans and a
warning in the log, never latency or memory growth. Sampling is parent-based: an incoming
`traceparent` decides for the whole trace, else `telemetry.sample_ratio` does (by trace id, so
every span of a trace agrees).

`Tracing.start` starts a span as the SDK's tracer would (the SDK's sampler decides; ids from
the SDK's generator), and `Tracing.child` one below a span of this app's request: below a
sampled span it needs no decision (ParentBased's answer for a local sampled parent is always
"record and sample", with the parent's trace state and flags), so it is built straight away.
Recording spans are our `LiveSpan`s (`bff.telemetry.spans`: why not the SDK's own `Span`);
`Tracing.span(...)` makes one current while it lasts, so spans below, in tasks too, find
their parent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace import propagation as trace_propagation
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from bff.config.models import TelemetryConfig
from bff.telemetry import collector
from bff.telemetry.export_queue import SpanQueue
from bff.telemetry.spans import LiveSpan, Recorder

log = logging.getLogger("bff.telemetry")

QUEUE_SIZE = 4096  # spans waiting for export; past it new spans are dropped (bounded memory)
BATCH_SIZE = 512
EXPORT_DELAY_S = 1.0
EXPORT_TIMEOUT_S = 5.0
PROPAGATOR = TraceContextTextMapPropagator()


def make_exporter(config: TelemetryConfig) -> SpanExporter | None:
    """The exporter `telemetry.exporter` names; `None` for `none` (tracing off). The OTLP
    exporters take their endpoint, headers, compression, time-out and TLS from `collector`."""
    if config.exporter == "otlp_http":
        from bff.telemetry.otlp import OtlpHttpExporter

        target = collector.resolve(config, os.environ)
        return OtlpHttpExporter(
            f"{target.endpoint}/v1/traces",
            timeout=target.timeout,
            headers=target.headers,
            compression=target.compression,
            context=target.ssl_context() if target.https else None,
        )
    if config.exporter == "otlp_grpc":
        return grpc_exporter(collector.resolve(config, os.environ))
    if config.exporter == "console":
        return ConsoleSpanExporter(service_name=service_name(config))
    return None


def grpc_exporter(target: collector.Collector) -> SpanExporter:
    """The SDK's OTLP/gRPC exporter, given every setting (so it reads no environment itself);
    header names become lowercase, as gRPC metadata must be."""
    import grpc  # type: ignore[import-untyped]
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    credentials = None
    if target.https:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=target.pem("ca_file"),
            private_key=(target.pem("key_file") or target.pem("cert_file"))
            if "cert_file" in target.tls_files
            else None,
            certificate_chain=target.pem("cert_file"),
        )
    return GrpcSpanExporter(
        endpoint=target.endpoint.split("://", 1)[1],
        insecure=not target.https,
        credentials=credentials,
        headers=tuple((name.lower(), value) for name, value in target.headers.items()),
        timeout=target.timeout,
        compression=grpc.Compression.Gzip
        if target.compression == "gzip"
        else grpc.Compression.NoCompression,
    )


def service_name(config: TelemetryConfig) -> str:
    return collector.service_name(config, os.environ)


class Tracing:
    """One app's tracing (never the global tracer provider: each app has its settings)."""

    def __init__(self, config: TelemetryConfig, processor: SpanProcessor) -> None:
        """`processor` gets every ended span (`on_end` only; ours is a `SpanQueue`)."""
        self.processor = processor
        root = TraceIdRatioBased(config.sample_ratio)
        self.sampler = ParentBased(root)
        self._root_bound = root.bound  # the root sampler's decision, made in `start`
        self.ids = RandomIdGenerator()
        self.recorder = Recorder(
            processor,
            Resource.create({"service.name": service_name(config)}),
            InstrumentationScope("bff", "", ""),  # as the SDK names a tracer's scope
            SpanLimits(),  # from the OTEL_*_LIMIT environment, as the SDK's default
        )
        self._room = self.recorder.room
        self._random = self.ids.is_trace_id_random()

    @classmethod
    def from_config(
        cls, config: TelemetryConfig, exporter: SpanExporter | None = None
    ) -> Tracing | None:
        """Tracing per config, or with `exporter` (tests); `None` when the exporter is `none`."""
        exporter = exporter or make_exporter(config)
        if exporter is None:
            return None
        queue = SpanQueue(
            exporter,
            max_queue_size=QUEUE_SIZE,
            max_batch_size=BATCH_SIZE,
            delay_s=EXPORT_DELAY_S,
            export_timeout_s=EXPORT_TIMEOUT_S,
        )
        return cls(config, queue)

    def start(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """A started span below the span current in `context` (a new trace without one), as
        the SDK's tracer starts it: the sampler decides, a dropped span does not record."""
        current = current_span() if context is None else trace.get_current_span(context)
        parent: SpanContext | None = current.get_span_context()
        if parent is None or not parent.is_valid:
            parent, trace_id = None, self.ids.generate_trace_id()
        else:
            trace_id = parent.trace_id
        if parent is None and context is None:
            # A root in the current context: ParentBased hands it to the ratio sampler, whose
            # answer is this comparison, with no trace state and the attributes if sampled
            # (the SDK's sampler chain is a dozen Python calls for it, on every request).
            sampled = trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < self._root_bound
            decision = Decision.RECORD_AND_SAMPLE if sampled else Decision.DROP
            trace_state = DEFAULT_TRACE_STATE
            chosen: Mapping[str, Any] | None = attributes if sampled else None
        else:
            decided = self.sampler.should_sample(context, trace_id, name, kind, attributes)
            decision = decided.decision
            trace_state = decided.trace_state or DEFAULT_TRACE_STATE
            chosen = decided.attributes
        flags = TraceFlags.SAMPLED if decision is Decision.RECORD_AND_SAMPLE else TraceFlags.DEFAULT
        if self._random if parent is None else parent.trace_flags.random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), trace_state
        )
        if decision is Decision.DROP:
            return NonRecordingSpan(span_context)
        return LiveSpan(self.recorder, self._room, name, span_context, parent, kind, chosen)

    def child(
        self,
        name: str,
        parent: Span,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        """A started span under `parent` (a span of this app's request), not made current."""
        if type(parent) is LiveSpan and parent.is_recording():
            context = parent.get_span_context()
            if context.trace_flags.sampled:
                return LiveSpan(
                    self.recorder,
                    self._room,
                    name,
                    SpanContext(
                        context.trace_id,
                        self.ids.generate_span_id(),
                        False,
                        context.trace_flags,
                        context.trace_state,
                    ),
                    context,
                    kind,
                    attributes,
                )
        return self.start(name, trace.set_span_in_context(parent), kind, attributes)

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
        return self.processor.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.processor.shutdown()


class SpanScope:
    """`with`: the span is current inside, ended (with an error status on exception) after."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = attach_span(self.span)
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        detach(self._token)  # type: ignore[arg-type]
        if exc is not None and self.span.is_recording():
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.span.end()


def _span_variable() -> tuple[ContextVar[Any], str] | None:
    """The runtime context's variable and the span's key in the context it holds (a dict),
    or None when the API keeps them elsewhere (then `current_span` asks it)."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    key = getattr(trace_propagation, "_SPAN_KEY", None)
    if isinstance(variable, ContextVar) and isinstance(key, str):
        return variable, key
    return None


_SPAN_VARIABLE = _span_variable()


def current_span() -> Span:
    """`trace.get_current_span()` in two C calls (a variable read, a dict lookup) instead of
    OpenTelemetry's five Python calls: a Dashboard asks a dozen times."""
    if _SPAN_VARIABLE is None:
        return trace.get_current_span()
    variable, key = _SPAN_VARIABLE
    span = variable.get().get(key)
    if type(span) in _SPAN_TYPES:  # `Span` is an ABC: `isinstance` is a Python call
        return span  # type: ignore[no-any-return]
    if isinstance(span, Span):
        _SPAN_TYPES.add(type(span))
        return span
    return INVALID_SPAN


_SPAN_TYPES: set[type] = set()  # the span classes `current_span` has seen (a handful)


def attach_span(span: Span) -> Token[Any]:
    """`otel_context.attach(trace.set_span_in_context(span))` in C calls (a copy of the
    current context with `span` in it, set on the runtime context's variable) instead of six
    Python calls; undone by `detach`, as the API's token is."""
    if _SPAN_VARIABLE is None:
        return otel_context.attach(trace.set_span_in_context(span))
    variable, key = _SPAN_VARIABLE
    values = variable.get().copy()
    values[key] = span
    return variable.set(otel_context.Context(values))


def detach(token: Token[Any]) -> None:
    """`otel_context.detach`: the context before `attach_span`, logged, never raised, when
    the token is not this context's (as the API does)."""
    if _SPAN_VARIABLE is None:
        otel_context.detach(token)
        return
    try:
        _SPAN_VARIABLE[0].reset(token)
    except Exception:
        log.exception("Failed to detach context")


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
