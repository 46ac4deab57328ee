"""Usage metering: who calls what, how often and how fast (SPEC section 8).

`Meter.record` is all the request path does (a tuple appended to a list); a background task
folds the records into per-minute counters and writes them to the store in one batch a second:
`MemoryUsageStore` in a single process, `RedisUsageStore` when the gateway's shared state is
in Redis, so every replica adds to the same counters. `usage_report` reads a window back for
`GET /admin/usage` and `bff usage`.
"""

from bff.metering.meter import Meter
from bff.metering.report import UsageReport, render_table, usage_report
from bff.metering.store import MemoryUsageStore, RedisUsageStore, UsageStore

__all__ = [
    "MemoryUsageStore",
    "Meter",
    "RedisUsageStore",
    "UsageReport",
    "UsageStore",
    "render_table",
    "usage_report",
]
