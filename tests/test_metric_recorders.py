"""The fast recorders write what prometheus-client's own `observe` and `inc` write."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bff.telemetry.recorders import counted_recorder, counter_recorder, histogram_recorder

BUCKETS = (0.005, 0.01, 0.1, 1.0)
# below, on, between and past every bound, zero, an integer, and NaN
AMOUNTS = (0.0, 0.001, 0.005, 0.0050001, 0.01, 0.05, 0.1, 0.5, 1.0, 1.5, 7, 1e9, math.nan)


def exposition(record: bool) -> bytes:
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", ["route"], buckets=BUCKETS, registry=registry)
    counter = Counter("c", "c", ["route"], registry=registry)
    h_child, c_child = histogram.labels("/graphql"), counter.labels("/graphql")
    observe = histogram_recorder(h_child) if record else h_child.observe
    inc = counter_recorder(c_child) if record else c_child.inc
    for amount in AMOUNTS:
        observe(amount)
        inc(1)
    inc(2.5)
    return generate_latest(registry)


def test_recorders_expose_what_the_library_methods_do() -> None:
    mine, theirs = exposition(True), exposition(False)
    assert b'h_seconds_bucket{le="0.005",route="/graphql"} 3.0' in theirs  # 0, 0.001, 0.005
    assert b"c_total" in theirs
    assert mine == theirs


def counted_exposition(fused: bool) -> bytes:
    """One count and one observation per amount, fused or by the library's own methods."""
    registry = CollectorRegistry()
    histogram = Histogram("h_seconds", "h", ["upstream"], buckets=BUCKETS, registry=registry)
    counter = Counter("c", "c", ["upstream", "status"], registry=registry)
    h_child = histogram.labels("users")
    ok, failed = counter.labels("users", "2xx"), counter.labels("users", "5xx")
    record_ok, record_failed = counted_recorder(ok, h_child), counted_recorder(failed, h_child)
    for index, amount in enumerate(AMOUNTS):
        if fused:
            (record_failed if index % 3 == 0 else record_ok)(amount)
        else:
            (failed if index % 3 == 0 else ok).inc()
            h_child.observe(amount)
    return generate_latest(registry)


def test_counted_recorder_exposes_what_inc_and_observe_do() -> None:
    mine, theirs = counted_exposition(True), counted_exposition(False)
    assert b'c_total{status="5xx",upstream="users"} 5.0' in theirs  # every third of 13
    assert b'h_seconds_count{upstream="users"} 12.0' in theirs  # NaN is in no bucket
    assert mine == theirs


def test_another_layout_falls_back_to_the_librarys_methods() -> None:
    """A prometheus-client that keeps its values elsewhere gets `observe` / `inc` back."""
    from bff.telemetry.recorders import counter_recorder, histogram_recorder

    class Other:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

        def inc(self, amount: float = 1) -> None:
            self.seen.append(-amount)

    other = Other()
    histogram_recorder(other)(0.25)  # type: ignore[arg-type]
    counter_recorder(other)(2)  # type: ignore[arg-type]
    counted_recorder(other, other)(0.5)  # type: ignore[arg-type]
    assert other.seen == [0.25, -2, -1, 0.5]
