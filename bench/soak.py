"""`python -m bench.soak`: minutes of mixed traffic at a steady rate, with a fault every minute.

    .venv/bin/python -m bench.soak                        # 10 minutes at 50 requests/s
    .venv/bin/python -m bench.soak --minutes 0.25 --fault-every 3 --rate 20   # a smoke run

A gateway (`bff serve`, one worker) with its tokens (opaque by default; `--tokens jwt`), rate
limits, APQ and metering in Redis, over the six sample services on three hosts (each host one
process serving an instance of every service: `bench/soak_faults.py`). The load generator in
this process sends `--rate` requests a second of queries, mutations, passthrough GETs, logins
and refreshes (`bench/soak_traffic.py`), open loop. The run is cut into periods of
`--fault-every` seconds (60: minutes); the first is quiet, then each period injects one fault,
in rotation, from a sixth into the period for half of it:

- `kill`: host 0 or 1 (alternately) is killed with SIGKILL, and started again on its ports;
- `redis`: Redis is stopped (SIGTERM; its data kept in an append-only file) and started again;
- `slow`: one service's instance on host 2 answers `--slow-ms` later (a proxy holds each
  request), catalog, orders and users in turn.

Every upstream is balanced by `--balancer`, `peak_ewma` by default: a production gateway
facing an instance that turns slow balances on latency (under `round_robin` the slow instance
gets a third of its service's calls, and a Dashboard's five calls carry the delay to most
requests' p99; `--balancer round_robin` shows it).

Reported per period: requests, documented fail-closed errors and other errors (which is which:
`bench/soak_report.py`), p50 and p99 latency, the gateway's RSS; the gateway's RSS at the start
(after `--warmup` seconds of the same traffic, not recorded) and at the end; and three goal
lines, PASS or FAIL: no errors outside the documented fail-closed cases, every period's p99
within 2 x the quiet period's, RSS growth under 10 %. Written to
`bench/results/soak-<UTC time>-<commit>.md`. Pinned as `bench.run` is when two cores are
usable: the gateway on one, everything else (hosts, Redis, proxies, load) on the other.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/soak.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import yaml

from bench import soak_report
from bench.procs import (
    Children,
    core_busy_seconds,
    cpu_seconds,
    detect_pinning,
    process_tree,
    termination_as_interrupt,
    worker_pids,
)
from bench.soak_faults import (
    HOSTS,
    KILLABLE_HOSTS,
    SLOW_HOST,
    SLOWED_SERVICES,
    DurableRedis,
    Hosts,
    Period,
    SlowProxies,
    schedule,
    upstreams,
)
from bench.soak_report import Window
from bench.soak_traffic import Outcome, Traffic, drive, sessions
from bench.stack import NEVER_LIMIT, SERVICES, serve_config
from bff.upstream import BALANCERS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ROUTES = [
    {"name": "catalog", "upstream": "catalog", "methods": ["GET"], "auth": "public"},
    {
        "name": "orders",
        "upstream": "orders",
        "methods": ["GET"],
        "auth": {"scopes": ["orders:read"]},
    },
]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Soak:
    """What a run records while it runs."""

    started: float = 0.0  # monotonic time of second 0
    wall_started: float = 0.0  # the same moment, epoch seconds (for the gateway's log)
    outcomes: list[Outcome] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    rss: dict[int, float] = field(default_factory=dict)  # period index -> MB at its end
    cpu: dict[int, tuple[float, float]] = field(default_factory=dict)  # -> gateway %, load %

    def now(self) -> float:
        return time.monotonic() - self.started

    def log(self, text: str) -> None:
        line = f"{self.now():7.1f} s: {text}"
        self.events.append(line)
        say(line)


def rss_mb(pid: int) -> float:
    """VmRSS of the processes of a server that answer requests, in MB (10^6 bytes)."""
    total = 0
    for worker in worker_pids(pid):
        try:
            status = Path(f"/proc/{worker}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total / 1e6


def gateway_config(
    hosts: Hosts, proxies: SlowProxies, redis_url: str, token_format: str, balancer: str
) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1"},
        "upstreams": upstreams(hosts, proxies, balancer),
        "routes": ROUTES,
        "auth": {
            "token_format": token_format,
            "store": "redis",
            "jwt": {"algorithm": "HS256", "secret": secrets.token_urlsafe(32)},
        },
        "redis": {"url": redis_url, "key_prefix": f"bffsoak:{secrets.token_hex(4)}:"},
        "rate_limits": {
            "default": {"requests": NEVER_LIMIT, "per": "1s"},
            # every session logs in from this one address: the login throttle's default
            # budgets would refuse most logins and refreshes (429s, not faults)
            "login": {
                "per_username": {"requests": NEVER_LIMIT},
                "per_address": {"requests": NEVER_LIMIT},
            },
        },
        "limits": {"max_cost": NEVER_LIMIT, "max_aliases": 1000, "max_depth": 50},
    }


async def inject(
    soak: Soak,
    periods: Sequence[Period],
    hosts: Hosts,
    redis: DurableRedis,
    proxies: SlowProxies,
    slow_s: float,
) -> None:
    """Each period's fault at its time and undone at its end, each in a task of its own, so a
    slow restart cannot push the next fault back."""
    faults = [p for p in periods if p.fault is not None]
    kills = [p for p in faults if p.fault == "kill"]
    slows = [p for p in faults if p.fault == "slow"]
    tasks = []
    for period in faults:
        if period.fault == "kill":
            host = KILLABLE_HOSTS[kills.index(period) % len(KILLABLE_HOSTS)]
            tasks.append(kill_host(soak, period, hosts, host))
        elif period.fault == "redis":
            tasks.append(restart_redis(soak, period, redis))
        else:
            service = SLOWED_SERVICES[slows.index(period) % len(SLOWED_SERVICES)]
            tasks.append(slow_service(soak, period, proxies, service, slow_s))
    await asyncio.gather(*tasks)


async def until(soak: Soak, second: float) -> None:
    await asyncio.sleep(max(0.0, soak.started + second - time.monotonic()))


async def kill_host(soak: Soak, period: Period, hosts: Hosts, host: int) -> None:
    await until(soak, period.fault_start)
    soak.log(f"kill host {host} (SIGKILL)")
    soak.windows.append(Window("kill", soak.now(), soak.now()))
    await asyncio.to_thread(hosts.kill, host)
    await until(soak, period.fault_end)
    soak.log(f"restart host {host}")
    await asyncio.to_thread(hosts.start, host)
    soak.log(f"host {host} ready")


async def restart_redis(soak: Soak, period: Period, redis: DurableRedis) -> None:
    await until(soak, period.fault_start)
    start = soak.now()
    soak.log("stop Redis (SIGTERM)")
    await asyncio.to_thread(redis.stop)
    await until(soak, period.fault_end)
    soak.log("start Redis")
    await asyncio.to_thread(redis.start)
    soak.windows.append(Window("redis", start, soak.now()))
    soak.log("Redis answers")


async def slow_service(
    soak: Soak, period: Period, proxies: SlowProxies, service: str, slow_s: float
) -> None:
    await until(soak, period.fault_start)
    soak.log(f"slow {service} on host {SLOW_HOST} by {slow_s * 1000:g} ms")
    proxies.slow(service, slow_s)
    await until(soak, period.fault_end)
    proxies.slow(service, 0.0)
    soak.log(f"{service} on host {SLOW_HOST} back to normal")


async def sample(soak: Soak, periods: Sequence[Period], pid: int, load_core: int | None) -> None:
    """At each period's end: the gateway's RSS, its CPU time over the period in % of one core,
    and how busy the core of everything else was (all cores when not pinned), in %."""
    cpu_before, busy_before, at = cpu_seconds(process_tree(pid)), _busy(load_core), soak.now()
    for period in periods:
        await asyncio.sleep(max(0.0, soak.started + period.end - time.monotonic()))
        soak.rss[period.index] = rss_mb(pid)
        cpu, busy, now = cpu_seconds(process_tree(pid)), _busy(load_core), soak.now()
        span = max(now - at, 1e-9)
        cores = 1 if load_core is not None else len(os.sched_getaffinity(0))
        soak.cpu[period.index] = (
            100 * (cpu - cpu_before) / span,
            100 * (busy - busy_before) / span / cores,
        )
        cpu_before, busy_before, at = cpu, busy, now


def _busy(core: int | None) -> float:
    busy = core_busy_seconds()
    return busy.get(core, 0.0) if core is not None else sum(busy.values())


async def run_soak(
    args: argparse.Namespace,
    url: str,
    gateway_pid: int,
    hosts: Hosts,
    redis: DurableRedis,
    proxies: SlowProxies,
    load_core: int | None,
) -> tuple[Soak, list[Period], float]:
    """Log in, warm up, then the timed soak; the record, the periods and the RSS at start."""
    total_s = args.minutes * 60
    periods = schedule(total_s, args.fault_every)
    # idle connections expire before the gateway's keep-alive timeout (uvicorn's 5 s), so a
    # request never races the gateway closing the connection it is sent on
    limits = httpx.Limits(
        max_connections=args.max_in_flight, max_keepalive_connections=64, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(limits=limits, timeout=None, trust_env=False) as client:
        traffic = Traffic(client, url, sessions(args.sessions), random.Random(args.seed))
        await traffic.login_all()
        if args.warmup > 0:
            say(f"warm-up: {args.warmup:g} s at {args.rate:g} requests/s (not recorded)")
            warm: list[Outcome] = []
            await drive(
                traffic, args.rate, args.warmup, time.monotonic(), warm.append,
                args.max_in_flight, args.seed + 1,
            )  # fmt: skip
        soak = Soak(started=time.monotonic() + 0.05, wall_started=time.time() + 0.05)
        traffic.t0 = soak.started
        rss_start = rss_mb(gateway_pid)
        say(f"soak: {total_s:g} s at {args.rate:g} req/s, a fault every {args.fault_every:g} s")
        await asyncio.gather(
            drive(
                traffic,
                args.rate,
                total_s,
                soak.started,
                soak.outcomes.append,
                args.max_in_flight,
                args.seed,
            ),
            inject(soak, periods, hosts, redis, proxies, args.slow_ms / 1000),
            sample(soak, periods, gateway_pid, load_core),
        )
    return soak, periods, rss_start


def git(*argv: str) -> str:
    try:
        done = subprocess.run(
            ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), load average {load}, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )


def markdown(
    args: argparse.Namespace,
    soak: Soak,
    periods: Sequence[Period],
    rss_start: float,
    notes: dict[str, str],
    gateway_log: Path,
) -> tuple[str, bool]:
    with gateway_log.open(errors="replace") as lines:
        served = soak_report.served_times(lines, soak.wall_started)
    rows = soak_report.figures(
        periods, soak.outcomes, soak.windows, args.tokens, soak.rss, soak.cpu, served
    )
    rss_end = soak.rss.get(periods[-1].index, 0.0)
    goals = soak_report.goal_lines(rows, rss_start, rss_end)
    errors = soak_report.error_lines(rows, soak.outcomes, soak.windows, args.tokens)
    text = "\n".join(
        [
            f"# Soak {notes['when']} ({notes['commit']})",
            "",
            f"`python -m bench.soak {notes['argv']}`".replace(" `", "`"),
            "",
            f"- {args.minutes:g} minutes at {args.rate:g} requests/s, a fault every "
            f"{args.fault_every:g} s (a sixth into its period, for half of it), slow = "
            f"+{args.slow_ms:g} ms; {args.tokens} tokens, rate limits, APQ and metering in Redis; "
            f"{len(SERVICES)} services x {HOSTS} instances, balancer `{args.balancer}`; "
            f"{args.sessions} sessions",
            f"- pinning: {notes['pinning']}",
            f"- machine at the start: {notes['machine_start']}",
            f"- machine at the end: {notes['machine_end']}",
            "",
            "## Goals",
            "",
            *goals,
            "",
            "## Per period",
            "",
            soak_report.period_table(rows, args.fault_every),
            "",
            f"Gateway RSS after the warm-up: {rss_start:.1f} MB.",
            "",
            "## Per kind",
            "",
            soak_report.kind_table(soak.outcomes, soak.windows, args.tokens),
            "",
            "## Errors",
            "",
            *(errors or ["none"]),
            "",
            "## Faults",
            "",
            "```",
            *soak.events,
            "```",
            "",
        ]
    )
    return text, soak_report.passed(goals)


def _not_logs(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if not name.endswith(".log")]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    add = parser.add_argument
    add("--minutes", type=float, default=10.0, help="length of the recorded soak (10)")
    add("--rate", type=float, default=50.0, help="requests per second (50)")
    add("--fault-every", type=float, default=60.0, help="seconds per period and fault (60)")
    add("--slow-ms", type=float, default=100.0, help="latency the slow fault adds (100)")
    add("--tokens", choices=("opaque", "jwt"), default="opaque", help="token format (opaque)")
    add("--balancer", choices=BALANCERS, default="peak_ewma", help="every upstream's (peak_ewma)")
    add("--warmup", type=float, default=10.0, help="seconds of unrecorded traffic first (10)")
    add("--sessions", type=int, default=8, help="logged-in clients (8)")
    add("--max-in-flight", type=int, default=256, help="unanswered requests at most (256)")
    add("--seed", type=int, default=21, help="seed of the request mix (21)")
    add("--results-dir", type=Path, default=RESULTS, help="where the report goes")
    add("--logs", type=Path, help="copy every process's log (gateway, hosts, Redis) here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.fault_every <= 0:
        parser.error("--minutes, --rate and --fault-every must be positive")
    if args.sessions < 2:
        parser.error("--sessions must be at least 2 (admins and customers)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("redis-server") is None:
        say("bench.soak needs redis-server on PATH (Debian/Ubuntu: apt-get install redis-server)")
        return 2
    pinning = detect_pinning()
    say(f"pinning: {pinning.reason}")
    when = datetime.datetime.now(datetime.UTC)
    notes = {
        "when": when.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "pinning": pinning.reason,
        "machine_start": machine_line(),
    }
    with (
        termination_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="bff-soak-") as tmp,
        Children(Path(tmp), ROOT) as children,
    ):
        work = Path(tmp)
        hosts = Hosts(children, pinning)
        hosts.start_all()
        proxies = SlowProxies({s: hosts.port(SLOW_HOST, s) for s in SERVICES})
        proxies.start()
        try:
            redis_dir = work / "redis"
            redis_dir.mkdir()
            redis = DurableRedis(children, pinning, redis_dir)
            redis.start()
            config_path = work / "bff.yaml"
            config = gateway_config(hosts, proxies, redis.url, args.tokens, args.balancer)
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            server = serve_config(children, pinning, config_path, "gateway", ready_path="/readyz")
            soak, periods, rss_start = asyncio.run(
                run_soak(
                    args, server.url, server.child.pid, hosts, redis, proxies, pinning.load_core
                )
            )
        finally:
            proxies.stop()
            children.stop_all()
            if args.logs is not None:
                shutil.copytree(work, args.logs, dirs_exist_ok=True, ignore=_not_logs)
        notes["machine_end"] = machine_line()
        text, ok = markdown(args, soak, periods, rss_start, notes, server.child.log_path)
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"soak-{when.strftime('%Y%m%dT%H%M%SZ')}-{notes['commit']}.md"
    path.write_text(text)
    say(f"report: {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
