"""`Meter`: record on the request path, write to the store off it, in batches.

A record costs one tuple appended to a list. Once a second (`FLUSH_INTERVAL`) a background
task takes the list, folds it into per-minute counters and hands them to the store in one
call (one Redis pipeline). A store that fails costs the batch and one warning a minute, never
a request. The pending list is bounded (`MAX_PENDING`): past it records are dropped and
counted, so a stuck store cannot grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from bff.metering.store import BUCKET, Counters, UsageStore, counter_name

log = logging.getLogger("bff.metering")

FLUSH_INTERVAL = 1.0
MAX_PENDING = 100_000
WARN_EVERY = 60.0

Record = tuple[float, str, str, Sequence[str], bool, float]  # time, client, op, fields, error, ms


def fold(records: Sequence[Record]) -> dict[int, Counters]:
    """Per-minute counters of `records`.

    Records of the same minute, client, operation, fields and outcome are added up first, so
    a second of traffic names each counter once per kind of request, not once per request
    (a Dashboard counts 17 coordinates, two counters each)."""
    groups: dict[tuple[int, str, str, tuple[str, ...], bool], list[float]] = {}
    for at, client, operation, fields, error, ms in records:
        key = (int(at // BUCKET), client, operation, tuple(fields), error)
        group = groups.get(key)
        if group is None:
            groups[key] = [1, ms]
        else:
            group[0] += 1
            group[1] += ms
    buckets: dict[int, Counters] = {}
    for (bucket, client, operation, fields, error), (calls, ms) in groups.items():
        counters = buckets.setdefault(bucket, defaultdict(float))
        rows = [("op", "")] + [("field", f) for f in fields]
        for kind, field in rows:
            counters[counter_name(kind, client, operation, field, "calls")] += calls
            counters[counter_name(kind, client, operation, field, "ms")] += ms
            if error:
                counters[counter_name(kind, client, operation, field, "errors")] += calls
    return buckets


class Meter:
    def __init__(self, store: UsageStore) -> None:
        self.store = store
        self.pending: list[Record] = []
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._warned = 0.0

    def record(
        self, client: str, operation: str, fields: Sequence[str], error: bool, ms: float
    ) -> None:
        if len(self.pending) < MAX_PENDING:
            self.pending.append((time.time(), client, operation, fields, error, ms))
        else:
            self.dropped += 1

    async def flush(self) -> None:
        """Write what is pending now (the report calls it first: it reads its own writes)."""
        records, self.pending = self.pending, []
        if not records:
            return
        try:
            await self.store.add(fold(records))
        except Exception as error:  # Redis away: the batch is lost, requests are not
            now = time.monotonic()
            if now - self._warned > WARN_EVERY:
                self._warned = now
                log.warning("metering: could not write %d records: %s", len(records), error)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        await self.store.aclose()
