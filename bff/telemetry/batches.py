"""The dataloader seam: one span and one batch-size observation per dataloader batch.

Resolvers never import OpenTelemetry: every loader calls the hook the engine gave it when a
request first asked for it (`bff.graph.services.Loaders`); the app hands this one to the
GraphQL endpoint, which gives it to each request's loaders. The span is a child of
the operation span (the batch task inherits the request's context) and the parent of the
client spans of the batch's upstream call.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from opentelemetry.trace import SpanKind

from bff.telemetry.current import current_observed
from bff.telemetry.tracing import current_span


def batch_scope(loader: str, upstream: str, size: int) -> AbstractContextManager[object] | None:
    """Around one batch call of `loader` to `upstream` for `size` keys; None when no span is
    recorded (the loader then awaits the call as it is)."""
    observed = current_observed()
    if observed is None:
        return None
    telemetry = observed.telemetry
    telemetry.metrics.batch(upstream, size)
    tracing = telemetry.tracing
    if tracing is None:
        return None
    parent = current_span()
    if not parent.is_recording():
        return None
    attributes = {"bff.upstream": upstream, "bff.batch.size": size, "bff.loader": loader}
    return tracing.span(f"dataloader {upstream}", SpanKind.INTERNAL, attributes, parent)
