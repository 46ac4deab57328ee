"""Telemetry stage: the server span, the request metrics and the access line of every request.

It runs right inside the request stage, so it sees every request, refused ones included (a
401 from authentication, a 429 from the rate limit, a masked 500 from the errors stage). It
continues a W3C trace a client sent (`traceparent`, `tracestate`), puts the trace id in the
request's state (error logs and masked errors quote it), and makes the request current for
the hooks at the other seams.
"""

from __future__ import annotations

from time import perf_counter

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.http.state import request_state
from bff.telemetry.current import Observed, forget, observe
from bff.telemetry.hub import Telemetry
from bff.telemetry.metrics import route_of
from bff.telemetry.redaction import redact_text
from bff.telemetry.tracing import attach_span, detach, incoming_context


class TelemetryStage:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        telemetry = self.telemetry
        observed = Observed(telemetry, request_state(scope), route_of(scope["path"]))
        status = 500  # what the client gets if the app fails before answering
        finished = False

        async def send_noting_status(message: Message) -> None:
            # Recorded before the last body part leaves: once a client has its answer, the
            # metrics, access line and metering of the request are there too.
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
                telemetry.finish(scope, observed, status, started)
            await send(message)

        token = observe(observed)
        try:
            if telemetry.tracing is None:
                await self.app(scope, receive, send_noting_status)
            else:
                await self._traced(scope, receive, send_noting_status, observed, lambda: status)
        finally:
            forget(token)
            if not finished:
                telemetry.finish(scope, observed, status, started)

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, observed: Observed, status: object
    ) -> None:
        tracing = self.telemetry.tracing
        assert tracing is not None
        parent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                parent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
        context = incoming_context(parent, tracestate) if parent is not None else None
        method, route = scope["method"], observed.route
        span = tracing.start(
            f"{method} {route}",
            context,
            SpanKind.SERVER,
            {
                "http.request.method": method,
                "http.route": route,
                "url.path": redact_text(scope["path"]),
                "bff.request_id": observed.state.request_id,
            },
        )
        span_context = span.get_span_context()
        observed.state.trace_id = f"{span_context.trace_id:032x}"
        if context is None:
            token = attach_span(span)
        else:
            token = otel_context.attach(trace.set_span_in_context(span, context))
        try:
            await self.app(scope, receive, send)
        finally:
            detach(token)
            if span.is_recording():
                code = status() if callable(status) else 500
                operation = observed.state.operation
                span.set_attributes(
                    {"http.response.status_code": code, "graphql.operation.name": operation}
                    if operation
                    else {"http.response.status_code": code}
                )
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
