"""The upstream seam: a transport layer with one client span per attempt.

It sits below the retry layer and above `BalancedTransport`, so each attempt is its own span
(`bff.attempt`) and carries its own `traceparent`; the instance the balancer chose comes back
with the reply (`bff.instance`). Every attempt also counts in `bff_upstream_requests_total`
and `bff_upstream_duration_seconds`, and in the request's upstream call count (access log).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from functools import partial
from time import perf_counter

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from bff.telemetry.current import Observed, current_observed
from bff.telemetry.redaction import redact_text
from bff.telemetry.tracing import current_span, traceparent
from bff.upstream.http11 import TransportError
from bff.upstream.request import Request
from bff.upstream.streaming import StreamedResponse
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
        span, request = self._begin(observed, request, attempt)
        started = perf_counter()
        try:
            reply = await self.inner.send(request, deadline, attempt)
        except BaseException as exc:
            self._failed(observed, span, exc, started)
            raise
        if span is None:  # `_answered` without a span (nearly every call): its metrics only
            observed.telemetry.metrics.upstream(
                self.upstream, reply.instance.url, reply.status, perf_counter() - started
            )
        else:
            self._answered(observed, span, request, reply.instance.url, reply.status, started)
        return reply

    async def stream(
        self,
        request: Request,
        deadline: float,
        attempt: int = 1,
        *,
        body: AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float = 30.0,
    ) -> StreamedResponse:
        """The span and the duration run until the streamed response closes."""
        observed = current_observed()
        span: Span | None = None
        if observed is not None:  # else outside a request: no span, no metrics
            span, request = self._begin(observed, request, attempt)
        started = perf_counter()
        try:
            answer = await self.inner.stream(
                request,
                deadline,
                attempt,
                body=body,
                content_length=content_length,
                read_timeout=read_timeout,
            )
        except BaseException as exc:
            if observed is not None:
                self._failed(observed, span, exc, started)
            raise
        if observed is not None:
            instance = answer.instance.url if answer.instance is not None else UNKNOWN_INSTANCE
            answer.on_close(
                partial(self._closed, observed, span, request, instance, answer, started)
            )
        return answer

    def _begin(
        self, observed: Observed, request: Request, attempt: int
    ) -> tuple[Span | None, Request]:
        """The attempt's client span (None when the trace is not sampled), and the request
        with the `traceparent` (and `tracestate`) that continue the trace upstream."""
        observed.state.upstream_calls += 1
        telemetry = observed.telemetry
        if telemetry.tracing is None:  # tracing off: no span, and no trace to continue
            return None, request
        parent = current_span()
        cached = observed.propagated
        if cached is not None and cached[0] is parent:  # not recording when it was cached
            lines = cached[1]
            return None, request.with_lines(lines) if lines else request
        span = None
        recording = parent.is_recording()
        if recording:
            span = telemetry.tracing.child(
                request.method,
                parent,
                SpanKind.CLIENT,
                {
                    "http.request.method": request.method,
                    "bff.upstream": self.upstream,
                    "bff.attempt": attempt,
                },
            )
        if span is not None:
            parent_header, state_header = traceparent(span)
        else:  # not sampled: every call of the request continues the same span
            context = parent.get_span_context()
            parent_header, state_header = traceparent(parent)
            if not context.is_valid:
                parent_header = ""
        sent = request
        if parent_header:
            sent = request.with_header("traceparent", parent_header)
            if state_header:
                sent = sent.with_header("tracestate", state_header)
        if span is None and not recording:  # and never will: its lines hold for the request
            observed.propagated = (parent, sent.fields[len(request.fields) :])
        return span, sent

    def _failed(
        self, observed: Observed, span: Span | None, exc: BaseException, started: float
    ) -> None:
        observed.telemetry.metrics.upstream(
            self.upstream, UNKNOWN_INSTANCE, None, perf_counter() - started
        )
        if span is not None:
            kind = type(exc).__name__
            span.set_attribute("error.type", kind)
            # a transport error says why (a TLS certificate that did not verify, a refusal)
            why = f"{kind}: {redact_text(str(exc))}" if isinstance(exc, TransportError) else kind
            span.set_status(Status(StatusCode.ERROR, why))
            span.end()

    def _closed(
        self,
        observed: Observed,
        span: Span | None,
        request: Request,
        instance: str,
        answer: StreamedResponse,
        started: float,
    ) -> None:
        """A streamed exchange is over: a body cut short is the attempt's error."""
        failure = answer.failure
        if failure is not None and span is not None:
            span.set_attribute("error.type", type(failure).__name__)
            span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
        self._answered(observed, span, request, instance, answer.status, started)

    def _answered(
        self,
        observed: Observed,
        span: Span | None,
        request: Request,
        instance: str,
        status: int,
        started: float,
    ) -> None:
        observed.telemetry.metrics.upstream(
            self.upstream, instance, status, perf_counter() - started
        )
        if span is not None:
            span.set_attributes(
                {
                    "url.full": redact_text(instance + request.target.decode("ascii")),
                    "http.response.status_code": status,
                    "bff.instance": instance,
                }
            )
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    async def aclose(self) -> None:
        await self.inner.aclose()
