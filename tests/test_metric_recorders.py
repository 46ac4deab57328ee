"""The fast recorders write what prometheus-client's own `observe` and `inc` write."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bff.telemetry.recorders import counter_recorder, histogram_recorder

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
    assert other.seen == [0.25, -2]
