"""The dataloader seam: one span and one batch-size observation per dataloader batch.

Resolvers never import OpenTelemetry: the loader base class calls the hook it was given
(`resolvers.loader.set_batch_hook`), and `install` gives it this one. The span is a child of
the operation span (the batch task inherits the request's context) and the parent of the
client spans of the batch's upstream call.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from opentelemetry.trace import SpanKind

from bff.telemetry.current import current_observed
from bff.telemetry.tracing import current_span

_NOTHING: AbstractContextManager[object] = nullcontext()


def batch_scope(loader: str, upstream: str, size: int) -> AbstractContextManager[object]:
    """Around one batch call of `loader` to `upstream` for `size` keys."""
    observed = current_observed()
    if observed is None:
        return _NOTHING
    telemetry = observed.telemetry
    telemetry.metrics.batch(upstream, size)
    tracing = telemetry.tracing
    if tracing is None:
        return _NOTHING
    parent = current_span()
    if not parent.is_recording():
        return _NOTHING
    attributes = {"bff.upstream": upstream, "bff.batch.size": size, "bff.loader": loader}
    return tracing.span(f"dataloader {upstream}", SpanKind.INTERNAL, attributes, parent)


def install() -> None:
    """Give the loader base class its batch hook (idempotent; the hook finds its app itself)."""
    from resolvers.loader import set_batch_hook

    set_batch_hook(batch_scope)
