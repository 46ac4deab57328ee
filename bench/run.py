"""`python -m bench.run`: the gateway against the floor and the reference, under wrk.

For each latency (default 0 ms and 10 ms) a fresh stack starts (`stack.py`): the sample
services on one core, the gateway, the floor (`floor.py`) and, in the first stack only, the
reference (`reference.py`, no upstream calls) on the other. `measure.py` checks the answers and
runs every (workload, target, concurrency) cell with wrk (`load.py`); the cells that the goals
compare with each other are measured last, in interleaved rounds (`rounds.py`). Then the
workers phase (unless `--skip-workers`): the gateway alone, nothing pinned, with one worker
and with `--workers 2`. `report.py` turns the cells into the tables and goal lines printed on
stdout and saved, with a JSON record, as `bench/results/<UTC time>-<commit>.md/.json`. See
bench/README.md.

Progress and problems go to stderr. Every child process is stopped on exit, Ctrl+C and SIGTERM
included (`procs.py`); every wait has a deadline.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, report
from bench.auth_targets import REDIS_URL, is_auth_target
from bench.cell import Cell
from bench.measure import TARGETS, run_stack, run_workers, say
from bench.procs import (
    ChildFailed,
    Children,
    Pinning,
    detect_pinning,
    termination_as_interrupt,
    unpinned,
)
from bench.report import WORKERS_LATENCY_MS, WORKERS_WORKLOAD
from bench.rounds import ROUNDS
from bench.stack import Redis, redis_for_auth, start_stack, stop_stack
from bench.workloads import DEFAULT_WORKLOADS, Workload, available

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def _csv(kind: type, text: str) -> list[Any]:
    try:
        return [kind(part.strip().removesuffix("ms")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid list {text!r}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the gateway against the floor (the same upstream calls with no "
        "gateway) and the reference (stock strawberry answering from memory) with wrk, and "
        "save the table under bench/results/. Needs wrk on PATH; pins processes to cores with "
        "taskset when available.",
    )
    parser.add_argument(
        "--latency",
        type=lambda t: _csv(float, t),
        default=[0.0, 10.0],
        metavar="MS[,MS...]",
        help="upstream latencies in ms, one stack each (default: 0,10)",
    )
    parser.add_argument(
        "--workloads",
        type=lambda t: _csv(str, t),
        default=list(DEFAULT_WORKLOADS),
        metavar="NAME[,NAME...]",
        help="dashboard, product, dashboard-100, dashboard-500, dashboard-apollo (default: "
        "dashboard,product,dashboard-500,dashboard-apollo; dashboard-500 is measured at "
        "concurrency 1 and 0 ms only, dashboard-apollo at 0 ms on the gateway and the reference)",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda t: _csv(int, t),
        default=[1, 32],
        metavar="N[,N...]",
        help="open connections of the load generator (default: 1,32)",
    )
    parser.add_argument(
        "--targets",
        type=lambda t: _csv(str, t),
        default=list(TARGETS),
        metavar="NAME[,NAME...]",
        help="floor, gateway, reference, gateway-opaque, gateway-jwt-redis, gateway-redis "
        "(default: all; ratios need the gateway and the floor or the reference; the last three "
        "need Redis and run the Dashboard at c=32 only: the two token kinds and their "
        "baseline, the plain JWT path with the same Redis for rate limits, APQ and metering)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        metavar="N",
        help="interleaved rounds of the cells the goals compare with each other (default: "
        f"{ROUNDS}): the Dashboard at c=32 on the gateway and on each of the last three "
        "targets, and the Apollo-style Dashboard at c=32 with it. They are measured after the "
        "other cells, each once per round, back to back (the order reversed every other "
        "round), so that the machine's drift over a run falls on all of them alike; a goal "
        "takes its ratio within each round and reports the median, and the table pools the "
        "rounds into one row per cell. 1: every cell once",
    )
    parser.add_argument(
        "--skip-workers",
        action="store_true",
        help="skip the workers phase (the gateway unpinned with one worker, then --workers 2)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per cell (10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per cell (2)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 s cells after 1 s of warm-up, overriding the two above (a smoke run)",
    )
    parser.add_argument("--product-id", type=int, default=42, help="id the lookup asks for (42)")
    parser.add_argument(
        "--floor-client",
        choices=("raw", "httpx"),
        default="raw",
        help="the floor's upstream client (raw: see bench/floor.py)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help="where to save (bench/results)"
    )
    parser.add_argument("--no-save", action="store_true", help="print the table only")
    return parser


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Workload]:
    if args.quick:
        args.duration, args.warmup = 3, 1
    known = available(args.product_id)
    unknown = [w for w in args.workloads if w not in known]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    bad_targets = [t for t in args.targets if t not in TARGETS]
    if bad_targets:
        parser.error(
            f"unknown target(s) {', '.join(bad_targets)}; choose from {', '.join(TARGETS)}"
        )
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if any(c < 1 for c in args.concurrency) or any(ms < 0 for ms in args.latency):
        parser.error("concurrency must be at least 1 and latency at least 0")
    return [known[name] for name in args.workloads]


# --- the record ------------------------------------------------------------------------------


def git(*argv: str) -> str:
    try:
        result = subprocess.run(
            ["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


PACKAGES = ("strawberry-graphql", "graphql-core", "uvicorn", "uvloop", "httptools", "orjson")


def package_versions() -> dict[str, str]:
    """Versions of what the reference's and the gateway's costs depend on."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def metadata(args: argparse.Namespace, pinning: Pinning, started: datetime) -> dict[str, Any]:
    return {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": {
            "sha": git("rev-parse", "HEAD") or "unknown",
            "short": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        },
        "cpu": {"count": os.cpu_count(), "model": cpu_model()},
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "wrk": load.wrk_version(),
        "packages": package_versions(),
        "pinning": pinning.reason,
        "settings": {
            "latency_ms": args.latency,
            "workloads": args.workloads,
            "concurrency": args.concurrency,
            "targets": args.targets,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "product_id": args.product_id,
            "floor_client": args.floor_client,
            "workers_phase": not args.skip_workers,
            "wrk_threads": 1,
        },
    }


def workers_phase_wanted(args: argparse.Namespace, pinning: Pinning) -> bool:
    if args.skip_workers:
        return False
    if "gateway" not in args.targets:
        say("workers phase skipped: the gateway is not a target")
        return False
    if len(pinning.cores) < 2:
        say("workers phase skipped: a second worker needs a second core")
        return False
    return True


def workers_phase(
    children: Children, pinning: Pinning, args: argparse.Namespace, work_dir: Path
) -> tuple[list[Cell], list[str]]:
    """The gateway alone with one worker, then `--workers 2`, with nothing pinned: the
    services, wrk and the runner share every core with the workers."""
    workload = available(args.product_id)[WORKERS_WORKLOAD]
    with unpinned(pinning) as free:
        say(f"workers phase: {free.reason}; one gateway worker, then two")
        stack = start_stack(children, free, WORKERS_LATENCY_MS, work_dir, targets=["gateway"])
        try:
            return run_workers(
                children,
                stack,
                workload,
                duration=args.duration,
                warmup=args.warmup,
                pinning=free,
                work_dir=work_dir,
            )
        finally:
            stop_stack(children, stack)


def auth_redis(children: Children, pinning: Pinning, args: argparse.Namespace) -> Redis | None:
    """The Redis of the auth targets, if any is asked for; without one, they are left out."""
    wanted = [t for t in args.targets if is_auth_target(t)]
    if not wanted:
        return None
    redis = redis_for_auth(children, pinning)
    if redis is None:
        say(f"warning: no Redis at {REDIS_URL}: {', '.join(wanted)} left out")
        args.targets = [t for t in args.targets if not is_auth_target(t)]
    else:
        say(f"Redis for {', '.join(wanted)}: {redis.where}")
    return redis


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    workloads = validate(args, parser)
    if load.wrk_path() is None:
        say(f"error: {load.MISSING_WRK}")
        return 2
    pinning = detect_pinning()
    say(f"pinning: {pinning.reason}")
    if pinning.load_core is not None:
        os.sched_setaffinity(0, {pinning.load_core})  # the runner stays off the target's core
    started = datetime.now(UTC)
    meta = metadata(args, pinning, started)

    cells: list[Cell] = []
    warnings: list[str] = []
    with (
        termination_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="bff-bench-") as tmp,
        Children(Path(tmp), ROOT) as children,
    ):
        work_dir = Path(tmp)
        try:
            redis = auth_redis(children, pinning, args)
            meta["redis"] = None if redis is None else redis.where
            for index, latency_ms in enumerate(args.latency):
                # the reference makes no upstream calls: the first stack measures it for all
                targets = [t for t in args.targets if t != "reference" or index == 0]
                if not targets:
                    continue
                say(f"starting services ({latency_ms:g} ms latency) and {', '.join(targets)}")
                stack = start_stack(
                    children,
                    pinning,
                    latency_ms,
                    work_dir,
                    targets=targets,
                    floor_client=args.floor_client,
                    redis=redis,
                )
                stack_cells, stack_warnings = run_stack(
                    stack,
                    workloads,
                    args.targets,
                    args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    pinning=pinning,
                    work_dir=work_dir,
                    rounds=args.rounds,
                )
                cells += stack_cells
                warnings += stack_warnings
                stop_stack(children, stack)
            if workers_phase_wanted(args, pinning):
                workers_cells, workers_warnings = workers_phase(children, pinning, args, work_dir)
                cells += workers_cells
                warnings += workers_warnings
        except KeyboardInterrupt:
            say("interrupted: stopping every process")
            return 130
        except (ChildFailed, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            say(f"error: {exc}")
            return 1

    report.attach_ratios(cells)
    meta["warnings"] = warnings
    text = report.markdown(cells, meta)
    print(text, end="")
    if not args.no_save:
        stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{meta['git']['short']}"
        record = {**meta, "cells": [cell.to_json() for cell in cells]}
        md, js = report.save(args.results_dir, stem, text, record)
        say(f"saved {md.relative_to(ROOT) if md.is_relative_to(ROOT) else md} and {js.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
