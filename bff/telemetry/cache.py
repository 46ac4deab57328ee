"""The response cache's seam: each lookup counted, and an event on the span it happened in.

A lookup made by a dataloader batch runs inside the batch span (`batches.py`), so a hit is
visible there (`cache hit`, with the upstream) as well as in `bff_cache_requests_total`.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.trace import NonRecordingSpan

from bff.telemetry.metrics import Metrics
from bff.telemetry.tracing import current_span


def cache_observer(metrics: Metrics) -> Callable[[str, str], None]:
    """`on_result(upstream, result)` for `bff.upstream.response_cache.ResponseCache`."""

    def on_result(upstream: str, result: str) -> None:
        metrics.cache_request(upstream, result)
        span = current_span()
        if type(span) is not NonRecordingSpan and span.is_recording():  # unsampled: no call
            span.add_event(f"cache {result}", {"bff.upstream": upstream})

    return on_result
