"""`python -m bench.balancer_cost`: microseconds per balancer choice, for each strategy.

What a request pays for picking an instance: `Balancer.choose()` (cached candidates, one clock
read, the strategy's `pick`), and the same plus the per-attempt bookkeeping the balanced
transport does around every call (in-flight count, moving latency and error rate, outlier
accounting on success). Pure CPU, no I/O: the numbers are per call on this machine's core.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as `python bench/balancer_cost.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bff.upstream import BALANCERS, Instance, make_balancer
from bff.upstream.outlier import OutlierDetector
from bff.upstream.transport import BalancedTransport


def instances(count: int) -> list[Instance]:
    return [Instance(f"http://127.0.0.1:{9000 + k}", weight=1 + k % 3) for k in range(count)]


def per_choice(kind: str, count: int, calls: int) -> float:
    balancer = make_balancer(kind, instances(count))
    choose = balancer.choose
    started = time.perf_counter()
    for _ in range(calls):
        choose()
    return (time.perf_counter() - started) / calls * 1e6


def per_attempt(kind: str, count: int, calls: int) -> float:
    """choose() plus what `BalancedTransport.send` does around the connection pool's send."""
    pool = instances(count)
    balancer = make_balancer(kind, pool)
    transport = BalancedTransport(
        balancer,
        max_connections=100,
        connect_timeout=0.5,
        outliers=OutlierDetector(pool),
    )
    choose, account, clock = balancer.choose, transport._account, transport.clock
    started = time.perf_counter()
    for _ in range(calls):
        instance = choose()
        instance.in_flight += 1
        begun = clock()
        instance.in_flight -= 1
        account(instance, begun, None)
    return (time.perf_counter() - started) / calls * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.balancer_cost", description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000, help="choices per cell (200000)")
    parser.add_argument("--instances", default="3,10", help="pool sizes (3,10)")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.instances.split(",")]
    print("| balancer | instances | choose() µs | choose() + bookkeeping µs |")
    print("|---|---:|---:|---:|")
    for kind in BALANCERS:
        for count in sizes:
            best_choice = min(per_choice(kind, count, args.calls) for _ in range(3))
            best_attempt = min(per_attempt(kind, count, args.calls) for _ in range(3))
            print(f"| {kind} | {count} | {best_choice:.3f} | {best_attempt:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
