"""`python -m bench.otlp_encoding`: µs per span to encode an OTLP export, ours and the SDK's.

The gateway exports spans with its own protobuf encoder (`bff.telemetry.otlp_encoder`); the SDK's
(`opentelemetry-exporter-otlp-proto-common`) builds a message object per span, attribute and
value before serializing. This prints both on the same batch: the spans of `--requests`
Dashboards (server, operation, four batch and five client spans each, with the attributes the
gateway's seams set), in batches of `--batch` spans as the batch span processor hands them over,
best of `--repeat`. Pure CPU on the export thread, no I/O. The tests check that both encodings
decode to the same message.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

if not __package__:  # run as `python bench/otlp_encoding.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bff.telemetry.otlp import encode_request

UPSTREAMS = ("users", "catalog", "inventory", "reviews")
INSTANCE = "http://127.0.0.1:{port}"


def dashboard_spans(requests: int) -> list[ReadableSpan]:
    """The spans of `requests` Dashboards, named and attributed as the gateway's seams do."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bff"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bff")
    for n in range(requests):
        server = tracer.start_span(
            "POST /graphql",
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.route": "/graphql",
                "url.path": "/graphql",
                "bff.request_id": uuid.uuid4().hex,
            },
        )
        server_context = trace.set_span_in_context(server)
        operation = tracer.start_span(
            "query Dashboard",
            server_context,
            attributes={
                "graphql.operation.type": "query",
                "graphql.document.hash": "9f" * 32,
                "graphql.operation.name": "Dashboard",
            },
        )
        operation_context = trace.set_span_in_context(operation)
        client(tracer, operation_context, "orders", 0, f"/orders?first=20&user={n % 50}")
        for port, upstream in enumerate(UPSTREAMS, start=1):
            batch = tracer.start_span(
                f"dataloader {upstream}",
                operation_context,
                attributes={
                    "bff.upstream": upstream,
                    "bff.batch.size": 7 + n % 13,
                    "bff.loader": f"{upstream.title()}Loader",
                },
            )
            ids = ",".join(str(n + k) for k in range(7))
            client(tracer, trace.set_span_in_context(batch), upstream, port, f"/items?ids={ids}")
            batch.end()
        operation.set_attribute("bff.graphql.error_count", 0)
        operation.end()
        server.set_attributes(
            {"http.response.status_code": 200, "graphql.operation.name": "Dashboard"}
        )
        server.end()
    return list(exporter.get_finished_spans())


def client(tracer: trace.Tracer, parent: object, upstream: str, port: int, target: str) -> None:
    instance = INSTANCE.format(port=9000 + port)
    span = tracer.start_span(
        "GET",
        parent,  # type: ignore[arg-type]
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": "GET", "bff.upstream": upstream, "bff.attempt": 1},
    )
    span.set_attributes(
        {"url.full": instance + target, "http.response.status_code": 200, "bff.instance": instance}
    )
    span.end()


def sdk_encode(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def per_span(
    encode: Callable[[Sequence[ReadableSpan]], bytes],
    batches: list[list[ReadableSpan]],
    repeat: int,
) -> float:
    spans = sum(len(b) for b in batches)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for batch in batches:
            encode(batch)
        best = min(best, time.process_time() - started)
    return best / spans * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_encoding", description=__doc__)
    parser.add_argument("--requests", type=int, default=400, help="Dashboards' spans (400)")
    parser.add_argument("--batch", type=int, default=512, help="spans per export (512)")
    parser.add_argument("--repeat", type=int, default=5, help="best of (5)")
    args = parser.parse_args(argv)
    spans = dashboard_spans(args.requests)
    batches = [spans[k : k + args.batch] for k in range(0, len(spans), args.batch)]
    ours = per_span(encode_request, batches, args.repeat)
    sdk = per_span(sdk_encode, batches, args.repeat)
    size_ours = sum(len(encode_request(b)) for b in batches)
    size_sdk = sum(len(sdk_encode(b)) for b in batches)
    print(
        f"OTLP encoding of {len(spans)} Dashboard spans in batches of {args.batch}, "
        f"best of {args.repeat}\n"
    )
    print("| encoder | µs per span | bytes per span |")
    print("|---|---:|---:|")
    for name, micros, size in (
        ("bff.telemetry.otlp_encoder", ours, size_ours),
        ("SDK (opentelemetry-exporter-otlp-proto-common)", sdk, size_sdk),
    ):
        print(f"| {name} | {micros:.2f} | {size / len(spans):.0f} |")
    print(f"\nours / SDK: {ours / sdk:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
