"""A Dashboard's spans made and exported by the OpenTelemetry SDK and by the gateway's own
recording spans, CPU µs per Dashboard.

    .venv/bin/python -m bench.span_cost             # 5 interleaved rounds of 2,400 Dashboards

The tree is the one a traced Dashboard makes (server, operation, and per upstream call a
batch span holding a client span, with the attributes the seams set). "SDK" is the SDK's tracer
(`TracerProvider`, `BatchSpanProcessor`) exporting with the SDK's OTLP encoder; "bff" is
`Tracing` (`LiveSpan`, `SpanQueue`) with `bff.telemetry.otlp_encoder`. Both export to a sink
that keeps the bytes' length, on their export thread; CPU is the whole process's, so that
thread's encoding counts. Each side keeps its best round.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind

from bff.config.models import TelemetryConfig
from bff.telemetry.otlp_encoder import encode_request
from bff.telemetry.tracing import Tracing, traceparent

CHUNK = 300  # Dashboards between two flushes
UPSTREAMS = ("orders", "users", "catalog", "inventory", "reviews")
SERVER = {
    "http.request.method": "POST",
    "http.route": "/graphql",
    "url.path": "/graphql",
    "bff.request_id": "9f0c1e0d6a2b4f7e8c3d5a1b2c4d6e8f",
}
OPERATION = {
    "graphql.operation.type": "query",
    "graphql.document.hash": "4f" * 32,
    "graphql.operation.name": "Dashboard",
}


class Sink(SpanExporter):
    """Encodes every batch, as an OTLP/HTTP exporter would before sending it."""

    def __init__(self, encode: Callable[[Sequence[ReadableSpan]], bytes]) -> None:
        self.encode = encode
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.encode(spans)
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


Start = Callable[[str, Span | None, SpanKind, dict[str, object]], Span]


def dashboard(start: Start) -> None:
    """The spans of one traced Dashboard, set up and ended as the gateway's seams do it."""
    server = start("POST /graphql", None, SpanKind.SERVER, SERVER)
    trace_id = f"{server.get_span_context().trace_id:032x}"  # as the request state keeps it
    assert trace_id
    token = otel_context.attach(trace.set_span_in_context(server))
    operation = start("query Dashboard", server, SpanKind.INTERNAL, OPERATION)
    inner = otel_context.attach(trace.set_span_in_context(operation))
    for upstream in UPSTREAMS:
        attributes = {"bff.upstream": upstream, "bff.batch.size": 20, "bff.loader": "Loader"}
        batch = start(
            f"dataloader {upstream}", trace.get_current_span(), SpanKind.INTERNAL, attributes
        )
        scope = otel_context.attach(trace.set_span_in_context(batch))
        client = start(
            "GET",
            trace.get_current_span(),
            SpanKind.CLIENT,
            {"http.request.method": "GET", "bff.upstream": upstream, "bff.attempt": 1},
        )
        traceparent(client)
        client.set_attributes(
            {
                "url.full": f"http://127.0.0.1:9000/{upstream}?ids=1,2,3",
                "http.response.status_code": 200,
                "bff.instance": "http://127.0.0.1:9000",
            }
        )
        client.end()
        otel_context.detach(scope)
        batch.end()
    operation.set_attribute("bff.graphql.error_count", 0)
    otel_context.detach(inner)
    operation.end()
    otel_context.detach(token)
    server.set_attributes({"http.response.status_code": 200, "graphql.operation.name": "Dashboard"})
    server.end()


def sdk_side() -> tuple[Start, Callable[[], object], Sink]:
    sink = Sink(lambda spans: encode_spans(spans).SerializeToString())
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(1.0)),
        resource=Resource.create({"service.name": "bff"}),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(
        BatchSpanProcessor(sink, max_queue_size=4096, max_export_batch_size=512)
    )
    tracer = provider.get_tracer("bff")

    def start(
        name: str, parent: Span | None, kind: SpanKind, attributes: dict[str, object]
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(name, context, kind, attributes)  # type: ignore[arg-type]

    return start, provider.force_flush, sink


def bff_side() -> tuple[Start, Callable[[], object], Sink]:
    sink = Sink(encode_request)
    tracing = Tracing.from_config(TelemetryConfig(exporter="otlp_http"), sink)
    assert tracing is not None

    def start(
        name: str, parent: Span | None, kind: SpanKind, attributes: dict[str, object]
    ) -> Span:
        if parent is None:
            return tracing.start(name, None, kind, attributes)
        return tracing.child(name, parent, kind, attributes)

    return start, tracing.flush, sink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.span_cost", description=__doc__)
    parser.add_argument("--trees", type=int, default=2400, help="Dashboards per round (2400)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    args = parser.parse_args(argv)
    sides = {"SDK": sdk_side(), "bff": bff_side()}
    best: dict[str, float] = {}
    for number in range(args.rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in order:
            start, flush, _ = sides[name]
            for _ in range(100):  # warm
                dashboard(start)
            flush()
            began = time.process_time()
            for _ in range(args.trees // CHUNK):  # the queues hold 4,096 spans: no drops
                for _ in range(CHUNK):
                    dashboard(start)
                flush()
            cost = (time.process_time() - began) / args.trees * 1e6
            best[name] = min(best.get(name, cost), cost)
    made = args.rounds * (100 + args.trees // CHUNK * CHUNK) * 12
    for name, (_, _, sink) in sides.items():
        assert sink.spans == made, f"{name} exported {sink.spans} of {made} spans"
    print(f"A Dashboard's 12 spans, made and exported; best of {args.rounds} rounds\n")
    print("| spans by | CPU µs per Dashboard | x SDK |")
    print("|---|---:|---:|")
    for name, cost in best.items():
        print(f"| {name} | {cost:.0f} | {cost / best['SDK']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
