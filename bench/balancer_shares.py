"""`python -m bench.balancer_shares`: how much of the traffic each balancer sends a slow instance.

Three instances of the sample catalog on loopback, one of them `--slow-ms` slower (the
service's own `latency` option), behind one `UpstreamPool` per balancer. Open-loop traffic
at `--rate` requests a second, each request `--calls` concurrent `GET /products/{id}` (as a
Dashboard fans out), for `--seconds`. Reported per balancer: the slow instance's share of the
calls and the requests' p50 / p99 (a request lasts as long as its slowest call). Shares are
the point; latencies are wall clock and move with the machine's load, so compare them within
one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as `python bench/balancer_shares.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bff.upstream import BALANCERS, Instance, UpstreamPool
from services import RunningServices, ServiceOptions, ServiceSpec


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def drive(pool: UpstreamPool, rate: float, calls: int, seconds: float) -> list[float]:
    """Requests sent on schedule (open loop); each one's latency in seconds."""
    rng = random.Random(7)
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        ids = [rng.randrange(1, 40) for _ in range(calls)]
        await asyncio.gather(*(pool.request("GET", f"/products/{i}") for i in ids))
        latencies.append(time.perf_counter() - started)

    tasks = []
    start = time.perf_counter()
    for k in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one()))
    await asyncio.gather(*tasks)
    return latencies


async def measure(kind: str, urls: list[str], args: argparse.Namespace) -> str:
    instances = [Instance(url) for url in urls]
    pool = UpstreamPool("catalog", instances, balancer=kind, dedupe=False)
    try:
        await drive(pool, args.rate, args.calls, 1.0)  # warm: connections, first estimates
        before = [i.attempts for i in instances]
        latencies = await drive(pool, args.rate, args.calls, args.seconds)
        counts = [i.attempts - b for i, b in zip(instances, before, strict=True)]
    finally:
        await pool.aclose()
    share = counts[-1] / max(1, sum(counts))
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    return f"| {kind} | {sum(counts)} | {counts[-1]} | {share:.1%} | {p50:.1f} | {p99:.1f} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.balancer_shares", description=__doc__)
    add = parser.add_argument
    add("--rate", type=float, default=20.0, help="requests per second (20)")
    add("--calls", type=int, default=5, help="concurrent calls per request (5)")
    add("--seconds", type=float, default=15.0, help="measured seconds per balancer (15)")
    add("--slow-ms", type=float, default=100.0, help="latency added to the slow instance (100)")
    add("--balancers", default=",".join(BALANCERS), help="which, comma-separated (all)")
    args = parser.parse_args(argv)
    slow = ServiceOptions(latency=args.slow_ms / 1000)
    with (
        RunningServices([ServiceSpec("catalog", instances=2)]) as fast,
        RunningServices([ServiceSpec("catalog", slow)]) as slowed,
    ):
        urls = [*fast.urls["catalog"], slowed.urls["catalog"][0]]
        print(
            f"{args.rate:g} requests/s x {args.calls} calls, {args.seconds:g} s, "
            f"one of 3 instances +{args.slow_ms:g} ms"
        )
        print("| balancer | calls | to the slow one | share | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind in args.balancers.split(","):
            print(asyncio.run(measure(kind, urls, args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
