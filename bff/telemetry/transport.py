"""The upstream seam: a transport layer with one client span per attempt.

It sits below the retry layer and above `BalancedTransport`, so each attempt is its own span
(`bff.attempt`) and carries its own `traceparent`; the instance the balancer chose comes back
with the reply (`bff.instance`). Every attempt also counts in `bff_upstream_requests_total`
and `bff_upstream_duration_seconds`, and in the request's upstream call count (access log).
"""

from __future__ import annotations

from time import perf_counter

from opentelemetry.trace import SpanKind, Status, StatusCode

from bff.telemetry.current import current_observed
from bff.telemetry.redaction import redact_text
from bff.telemetry.tracing import current_span, traceparent
from bff.upstream.request import Request
from bff.upstream.transport import Reply, Transport

UNKNOWN_INSTANCE = "unknown"  # an attempt that failed before an instance answered


class TracingTransport(Transport):
    def __init__(self, inner: Transport, upstream: str) -> None:
        self.inner = inner
        self.upstream = upstream

    async def send(self, request: Request, deadline: float, attempt: int = 1) -> Reply:
        observed = current_observed()
        if observed is None:  # outside a request (start-up checks, unit tests)
            return await self.inner.send(request, deadline, attempt)
        observed.state.upstream_calls += 1
        telemetry = observed.telemetry
        parent = current_span()
        span = None
        if telemetry.tracing is not None and parent.is_recording():
            span = telemetry.tracing.tracer.start_span(
                request.method,
                kind=SpanKind.CLIENT,
                attributes={
                    "http.request.method": request.method,
                    "bff.upstream": self.upstream,
                    "bff.attempt": attempt,
                },
            )
        if span is not None:
            parent_header, state_header = traceparent(span)
        else:  # not sampled: every call of the request continues the same span
            context = parent.get_span_context()
            cached = observed.propagated
            if cached is None or cached[0] != context.span_id:
                cached = observed.propagated = (context.span_id, *traceparent(parent))
            parent_header, state_header = cached[1], cached[2]
            if not context.is_valid:
                parent_header = ""
        if parent_header:
            request = request.with_header("traceparent", parent_header)
            if state_header:
                request = request.with_header("tracestate", state_header)
        started = perf_counter()
        try:
            reply = await self.inner.send(request, deadline, attempt)
        except BaseException as exc:
            telemetry.metrics.upstream(
                self.upstream, UNKNOWN_INSTANCE, None, perf_counter() - started
            )
            if span is not None:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
            raise
        instance = reply.instance.url
        telemetry.metrics.upstream(self.upstream, instance, reply.status, perf_counter() - started)
        if span is not None:
            span.set_attributes(
                {
                    "url.full": redact_text(instance + request.target.decode("ascii")),
                    "http.response.status_code": reply.status,
                    "bff.instance": instance,
                }
            )
            if reply.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()
