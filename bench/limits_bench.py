"""What the limits cost: the Dashboard with rate limits (in Redis) and query limits on, next to
both off, in one run, on the same services and the same core.

    .venv/bin/python -m bench.limits_bench                 # 10 s per cell, 3 rounds
    .venv/bin/python -m bench.limits_bench --duration 2 --rounds 1   # a smoke run

Each round starts a gateway per variant in turn (off, then on), pinned to the target core like
the main benchmark, and drives it with `wrk` at one concurrency (default 32). Rounds alternate
so that a machine that slows down over the run slows both variants alike; the table gives
each round and the medians, and the goal line compares the medians: limits on must keep at
least 0.9 x the requests per second of limits off. The `on` gateway checks every request's
budget in Redis (one Lua round trip per request, keyed by the token's subject; the budget is
too large to refuse anything) and analyses every query (cached per document; the Dashboard's
cost, 301, is in each answer's `extensions.cost`). The Redis is a private `redis-server` on the
load core (as in production, it must not take the gateway's CPU), or `--redis-url`'s.

The report is printed and saved as `bench/results/limits-<UTC time>-<commit>.md`
(`--results-dir`; `--no-save` only prints), so that two commits' costs can be compared later.

    .venv/bin/python -m bench.limits_bench --hits   # CPU per rate-limit hit, in process

`--hits` measures one part of that cost in this process instead (`bench.limits_hits`): CPU µs
per rate-limit hit on the Redis store (redis-py, hits of a loop turn in one script call) and
on the memory store, by hits per loop turn; saved as `limits-hits-<time>-<commit>.md`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench import load
from bench.procs import (
    Children,
    cpu_seconds,
    detect_pinning,
    http_post,
    process_tree,
    termination_as_interrupt,
)
from bench.stack import (
    NEVER_LIMIT,
    Stack,
    gateway_config,
    service_urls_of,
    sign_token,
    start_gateway,
    start_redis,
    start_services,
    stop_server,
)
from bench.workloads import dashboard

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.9
VARIANTS = ("off", "on")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def git(*argv: str) -> str:
    try:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    return done.stdout.strip()


def commit() -> str:
    """The checkout's short commit, `+` when it has uncommitted changes to tracked files."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + ("+" if dirty else "")


def variant_config(base: dict[str, Any], variant: str, redis_url: str) -> dict[str, Any]:
    config = {k: v for k, v in base.items() if k not in ("rate_limits", "limits")}
    if variant == "off":
        config["rate_limits"] = {"enabled": False}
        config["limits"] = {"enabled": False}
    else:
        config["redis"] = {"url": redis_url}
        config["rate_limits"] = {"default": {"requests": NEVER_LIMIT, "per": "1s"}}
        config["limits"] = {}  # the defaults: depth 10, aliases 30, cost 5000
    return config


def check(url: str, body: bytes, headers: dict[str, str], variant: str) -> None:
    status, answer = http_post(f"{url}/graphql", body, headers)
    data = orjson.loads(answer)
    if status != 200 or data.get("errors"):
        raise RuntimeError(f"the {variant} gateway answered {status}: {answer[:300]!r}")
    if (variant == "on") != ("extensions" in data):
        raise RuntimeError(f"the {variant} gateway's answer has the wrong extensions: {data}")


def save(args: argparse.Namespace, name: str, report: str) -> None:
    print(report)
    if not args.no_save:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        path = args.results_dir / name
        path.write_text(report + "\n")
        say(f"saved {path}")


def hits_main(args: argparse.Namespace) -> int:
    """`--hits`: the rate stores' CPU per hit, on a private redis-server or `--redis-url`."""
    import uvloop

    from bench.limits_hits import hit_costs, table
    from bff.limits import MemoryRateStore, RedisRateStore
    from bff.shared_state import SharedState

    pinning = detect_pinning()
    with (
        tempfile.TemporaryDirectory(prefix="bff-limits-hits-") as tmp,
        Children(Path(tmp), ROOT) as children,
    ):
        redis_url = args.redis_url or start_redis(children, pinning).url
        if pinning.target_core is not None:
            os.sched_setaffinity(0, {pinning.target_core})

        async def measure() -> dict[int, dict[str, list[float]]]:
            shared = SharedState.at(redis_url, f"bffbench:{secrets.token_hex(4)}:")
            assert shared.redis is not None
            stores = {
                "redis-py": RedisRateStore(shared.redis, shared.namespace("rl")),
                "memory": MemoryRateStore(),
            }
            try:
                return await hit_costs(stores, rounds=args.rounds, seconds=args.duration)
            finally:
                await shared.aclose()

        results = uvloop.run(measure())
    started = datetime.datetime.now(datetime.UTC)
    sha = commit()
    lines = [
        f"# bench.limits_bench --hits, {started:%Y-%m-%d %H:%M} UTC, commit {sha}\n",
        f"CPU µs per rate-limit hit, median of {args.rounds} interleaved rounds of "
        f"{args.duration:g} s; {pinning.reason}\n",
        *table(results),
    ]
    save(args, f"limits-hits-{started:%Y%m%dT%H%M%SZ}-{sha}.md", "\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.limits_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs measured")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    parser.add_argument(
        "--results-dir", type=Path, default=ROOT / "bench" / "results", help="where to save"
    )
    parser.add_argument("--no-save", action="store_true", help="print the report only")
    parser.add_argument(
        "--hits", action="store_true", help="CPU per rate-limit hit in process (no gateway)"
    )
    args = parser.parse_args(argv)
    if args.hits:
        return hits_main(args)
    if load.wrk_path() is None:
        say("bench.limits_bench: wrk is not installed (apt-get install wrk)")
        return 2
    if args.redis_url is None and shutil.which("redis-server") is None:
        say("bench.limits_bench: redis-server is not installed; install it or pass --redis-url")
        return 2
    pinning = detect_pinning()
    workload = dashboard(20)
    rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}  # gateway CPU ms per request
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bff-limits-bench-") as tmp,
        termination_as_interrupt(),
        Children(Path(tmp), ROOT) as children,
    ):
        work = Path(tmp)
        redis_url = args.redis_url or start_redis(children, pinning).url
        services = start_services(children, pinning, 0.0)
        urls = service_urls_of(services)
        base = gateway_config(urls, secrets.token_urlsafe(32))
        stacks = {}
        for variant in VARIANTS:
            path = work / f"bff-{variant}.yaml"
            path.write_text(yaml.safe_dump(variant_config(base, variant, redis_url)))
            stacks[variant] = Stack(0.0, services, urls, sign_token(path), path)
        for round_no in range(1, args.rounds + 1):
            for variant in VARIANTS:
                stack = stacks[variant]
                server = stack.servers["gateway"] = start_gateway(children, pinning, stack)
                headers = {
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Authorization": f"Bearer {stack.token}",
                }
                check(server.url, workload.body, headers, variant)
                script = load.write_script(work / f"{variant}.lua", workload.body, headers)
                prefix = pinning.prefix(pinning.load_core)
                url = f"{server.url}/graphql"
                load.run_wrk(url, script, concurrency=args.concurrency, duration=1, prefix=prefix)
                say(f"round {round_no}: limits {variant}, c={args.concurrency}")
                cpu_before = cpu_seconds(process_tree(server.child.pid))
                result = load.run_wrk(
                    url, script, concurrency=args.concurrency, duration=args.duration, prefix=prefix
                )
                cpu_ms = (cpu_seconds(process_tree(server.child.pid)) - cpu_before) * 1000
                stop_server(children, stack, "gateway")
                if result.error_count:
                    raise RuntimeError(f"limits {variant}: wrk saw errors {result.errors}")
                rps[variant].append(result.rps)
                per_request = cpu_ms / max(1, result.requests)
                cpu[variant].append(per_request)
                rows.append(
                    f"| {round_no} | {variant} | {result.rps:,.0f} | {per_request:.3f} "
                    f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} |"
                )
    off, on = (statistics.median(rps[v]) for v in VARIANTS)
    cpu_off, cpu_on = (statistics.median(cpu[v]) for v in VARIANTS)
    ratio = on / off if off else 0.0
    verdict = "PASS" if ratio >= GOAL else "FAIL"
    started = datetime.datetime.now(datetime.UTC)
    sha = commit()
    report = "\n".join(
        [
            f"# bench.limits_bench, {started:%Y-%m-%d %H:%M} UTC, commit {sha}\n",
            f"Dashboard, c={args.concurrency}, {args.duration:g} s cells, {pinning.reason}\n",
            "| round | limits | req/s | gateway CPU ms/req | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
            *rows,
            f"| median | off | {off:,.0f} | {cpu_off:.3f} | | |",
            f"| median | on | {on:,.0f} | {cpu_on:.3f} | | |\n",
            f"- {verdict}: Dashboard with rate limits (Redis) and query limits on: "
            f"{ratio:.2f} x the req/s of both off at c={args.concurrency} (goal ≥ {GOAL:g}); "
            f"gateway CPU per request {cpu_on / cpu_off if cpu_off else 0:.2f} x "
            f"({cpu_on - cpu_off:+.3f} ms)",
        ]
    )
    save(args, f"limits-{started:%Y%m%dT%H%M%SZ}-{sha}.md", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
