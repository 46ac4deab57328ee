"""What one rate-limit hit costs the gateway's CPU, by how many hits share a loop turn.

`python -m bench.limits_bench --hits` runs it. Under load several requests reach the rate
limit stage in one turn of the event loop, and the Redis store sends all their hits as one
script call (`bff.limits.stores.RedisRateStore`): the client library's cost per call is shared
among them. This measures CPU microseconds per hit (`time.process_time`, so Redis's own work,
in its own process, is not counted) for batches of 1, 4 and 16 hits of 7 clients, on each
store given, in interleaved rounds (the order reversed every other round), and prints the
median of the rounds. The stores are anything with `RateStore.hit`, so an older client can be
measured beside the current one with the same harness.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from bff.limits import RateStore, Rule

BATCHES = (1, 4, 16)
CLIENTS = 7  # distinct keys in a batch, as distinct callers are
Call = Callable[[], Awaitable[object]]


def batch_of_hits(store: RateStore, size: int) -> Call:
    """`size` hits queued in one turn of the loop, awaited together."""
    rule = Rule(1_000_000_000, 1.0)  # never refuses: every hit takes the whole path

    async def call() -> None:
        await asyncio.gather(*(store.hit(f"bench-{i % CLIENTS}", rule) for i in range(size)))

    return call


async def us_per_hit(call: Call, size: int, seconds: float) -> float:
    for _ in range(100):  # warm: connections open, the script loaded
        await call()
    calls = 0
    cpu = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            await call()
        calls += 20
    return (time.process_time() - cpu) / (calls * size) * 1e6


async def hit_costs(
    stores: Mapping[str, RateStore], rounds: int = 5, seconds: float = 1.0
) -> dict[int, dict[str, list[float]]]:
    """batch size -> store name -> CPU µs per hit in each round."""
    results: dict[int, dict[str, list[float]]] = {}
    names = list(stores)
    for size in BATCHES:
        results[size] = {name: [] for name in names}
        for index in range(rounds):
            for name in names if index % 2 == 0 else reversed(names):
                cost = await us_per_hit(batch_of_hits(stores[name], size), size, seconds)
                results[size][name].append(cost)
    return results


def table(results: Mapping[int, Mapping[str, Sequence[float]]]) -> list[str]:
    """Markdown: one row per batch size, the median of each store's rounds."""
    names = list(next(iter(results.values())))
    lines = [
        "| hits per loop turn | " + " | ".join(f"{n} µs/hit" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for size, by_store in results.items():
        cells = " | ".join(f"{statistics.median(by_store[n]):.1f}" for n in names)
        lines.append(f"| {size} | {cells} |")
    return lines
