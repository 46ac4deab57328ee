"""Recording into prometheus-client's label children in a few instructions.

`Histogram.observe` checks observability, walks the bucket bounds one by one in Python and
takes a lock per value; `Counter.inc` checks observability and the sign first. The gateway
records a dozen values per request into children it has already made and cached, with
amounts it computed itself (durations and sizes: never negative, never NaN), so those checks
are the whole cost. These recorders write into the same value objects (`_sum`, `_buckets`,
`_value`; a file-backed value under multiprocess mode), so exposition, multiprocess files and
`observe`'s bucket choice (the first bound the amount does not exceed) stay the library's.
prometheus-client is pinned; `tests/test_metric_recorders.py` checks the scrape is the
library's own, and a release that keeps those objects elsewhere gets its public `observe` /
`inc` back (slower, the same numbers).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.values import MutexValue


def histogram_recorder(child: Histogram) -> Callable[[float], None]:
    """`child.observe` for amounts that are numbers (not NaN), as one bisect and two adds.

    In a single process the values are `MutexValue`s: both adds are made here under their
    locks, as their `inc` makes them, without a call each; other values (multiprocess
    files) are added through their own `inc`."""
    parts = _histogram_parts(child)
    if parts is None:  # another release's layout: its own method
        return child.observe
    bounds, buckets, total = parts
    if all(type(v) is MutexValue for v in (*buckets, total)):

        def observe_locked(amount: float) -> None:
            if amount != amount:  # NaN: the library's loop matches no bucket; leave it to it
                child.observe(amount)
                return
            with total._lock:
                total._value += amount
            bucket = buckets[bisect_left(bounds, amount)]
            with bucket._lock:
                bucket._value += 1

        return observe_locked
    add_sum = total.inc
    incs = [bucket.inc for bucket in buckets]

    def observe(amount: float) -> None:
        if amount != amount:
            child.observe(amount)
            return
        add_sum(amount)
        incs[bisect_left(bounds, amount)](1)

    return observe


def counter_recorder(child: Counter) -> Callable[[float], None]:
    """`child.inc` for amounts that are not negative."""
    values: Any = child
    inc: Callable[[float], None] | None = getattr(getattr(values, "_value", None), "inc", None)
    return inc if inc is not None else child.inc


def counted_recorder(counter: Counter, histogram: Histogram) -> Callable[[float], None]:
    """One `counter` count and one `histogram` observation of the amount, in one call: each
    upstream attempt records both, which cost three Python calls through the two recorders
    above (and `MutexValue.inc`). The same value objects, so the same numbers."""
    parts = _histogram_parts(histogram)
    count: Any = getattr(counter, "_value", None)
    if parts is None or type(count) is not MutexValue:
        inc, observe = counter_recorder(counter), histogram_recorder(histogram)

        def record(amount: float) -> None:
            inc(1)
            observe(amount)

        return record
    bounds, buckets, total = parts
    if not all(type(v) is MutexValue for v in (*buckets, total)):
        observe = histogram_recorder(histogram)

        def record_counted(amount: float) -> None:
            with count._lock:
                count._value += 1
            observe(amount)

        return record_counted

    def record_locked(amount: float) -> None:
        with count._lock:
            count._value += 1
        if amount != amount:  # NaN: left to the library, as `histogram_recorder` does
            histogram.observe(amount)
            return
        with total._lock:
            total._value += amount
        bucket = buckets[bisect_left(bounds, amount)]
        with bucket._lock:
            bucket._value += 1

    return record_locked


def _histogram_parts(child: Histogram) -> tuple[list[float], list[Any], Any] | None:
    """A histogram child's bucket bounds (ending with +Inf), bucket values and sum value."""
    values: Any = child  # the library's value objects are not part of its typed surface
    try:
        return list(values._upper_bounds), list(values._buckets), values._sum
    except (AttributeError, TypeError):
        return None
