"""Measuring one stack: check the answers, then run every cell and account for it.

A cell is (workload, target, concurrency). Around its timed wrk run we wait until the target
is idle and the services' counters stop moving (so a warm-up's or a previous cell's requests,
still being answered by a slow target, are not counted), and read:

- the services' request counters;
- the CPU time of the target, of the services, and of everything we run (the load generator
  and this runner included), and the busy time of each core from /proc/stat. Busy time that
  none of our processes account for is *foreign*: another program competed for the cores, and
  the cell's numbers are suspect (the report says so).

Upstream calls per request come from a separate probe: sequential requests after a settle,
exactly counted. Dividing the in-cell count by wrk's request count would be biased: when wrk
stops it drops its in-flight requests, some of which the target has started (their calls are
counted) and some of which it never reads. Instead the in-cell count, divided by the exact
calls per request, tells how many requests the target worked on (the divisor of CPU/request).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import load
from bench.procs import (
    Child,
    Pinning,
    core_busy_seconds,
    cpu_seconds,
    http_post,
    own_cpu_seconds,
    peak_rss_mb,
    process_tree,
)
from bench.report import Cell
from bench.stack import Stack
from bench.workloads import Workload

TARGETS = ("floor", "gateway")
SETTLE_TIMEOUT = 60.0  # seconds for a target to drain its queue after a run
SETTLE_STEP = 0.25  # seconds between two looks at the counters
IDLE_CPU = 0.03  # CPU seconds per step under which the target counts as idle
PROBE_REQUESTS = 10  # sequential requests that count upstream calls exactly


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def headers_for(workload: Workload, target: str, stack: Stack) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if workload.needs_token and target == "gateway":
        headers["Authorization"] = f"Bearer {stack.token}"
    return headers


def url_for(workload: Workload, target: str, stack: Stack) -> str:
    if target == "gateway":
        return f"{stack.gateway_url}/graphql"
    return f"{stack.floor_url}{workload.floor_path}"


def ask(stack: Stack, workload: Workload, target: str) -> Any:
    """One request; the answer's `data`, or RuntimeError when it is not a clean 200."""
    url = url_for(workload, target, stack)
    status, body = http_post(url, workload.body, headers_for(workload, target, stack))
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if (
        status != 200
        or not isinstance(answer, dict)
        or answer.get("errors")
        or "data" not in answer
    ):
        raise RuntimeError(f"{target} answered {workload.name} with {status}: {body[:500]!r}")
    return answer["data"]


def check_answers(stack: Stack, workloads: Sequence[Workload]) -> list[str]:
    """The gateway must answer without errors, and the floor must compute the same data (else
    it does not do the same work). Returns warnings."""
    warnings = []
    for workload in workloads:
        if ask(stack, workload, "gateway") != ask(stack, workload, "floor"):
            warnings.append(
                f"{workload.name} at {stack.latency_ms:g} ms: the floor's data differs from "
                "the gateway's"
            )
    return warnings


def settle(stack: Stack, target: Child) -> int:
    """The services' request count once it stops moving and the target is idle."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    calls, cpu = stack.upstream_requests(), cpu_seconds(process_tree(target.pid))
    while time.monotonic() < deadline:
        time.sleep(SETTLE_STEP)
        now_calls, now_cpu = stack.upstream_requests(), cpu_seconds(process_tree(target.pid))
        if now_calls == calls and now_cpu - cpu <= IDLE_CPU:
            return now_calls
        calls, cpu = now_calls, now_cpu
    say(f"warning: {target.name} still busy {SETTLE_TIMEOUT:.0f} s after a run")
    return calls


def probe_calls(stack: Stack, workload: Workload, target: str) -> float:
    """Upstream calls per request, exactly: sequential requests between two settles."""
    child = stack.targets()[target][0]
    before = settle(stack, child)
    for _ in range(PROBE_REQUESTS):
        ask(stack, workload, target)
    return (settle(stack, child) - before) / PROBE_REQUESTS


@dataclass(frozen=True)
class Snapshot:
    wall: float
    calls: int
    target_cpu: float
    services_cpu: float
    ours_cpu: float  # every process of the run: stack, load generator, runner
    busy: dict[int, float]  # per core


def snapshot(stack: Stack, target: Child) -> Snapshot:
    ours = [pid for child in stack.children() for pid in process_tree(child.pid)]
    return Snapshot(
        wall=time.monotonic(),
        calls=stack.upstream_requests(),
        target_cpu=cpu_seconds(process_tree(target.pid)),
        services_cpu=cpu_seconds(process_tree(stack.services.pid)),
        ours_cpu=cpu_seconds(ours) + own_cpu_seconds(),
        busy=core_busy_seconds(),
    )


def measure(
    stack: Stack,
    workload: Workload,
    target: str,
    concurrency: int,
    *,
    duration: int,
    warmup: int,
    pinning: Pinning,
    script: Path,
) -> Cell:
    child, _ = stack.targets()[target]
    url = url_for(workload, target, stack)
    prefix = pinning.prefix(pinning.load_core)
    calls_per_request = probe_calls(stack, workload, target)
    if warmup:
        load.run_wrk(url, script, concurrency=concurrency, duration=warmup, prefix=prefix)
    settle(stack, child)
    before = snapshot(stack, child)
    result = load.run_wrk(url, script, concurrency=concurrency, duration=duration, prefix=prefix)
    settle(stack, child)
    after = snapshot(stack, child)
    for c in (child, stack.services):
        if not c.alive():
            raise c.failed("died during the run")
    cores = [c for c in (pinning.target_core, pinning.load_core) if c is not None]
    busy = sum(after.busy[c] - before.busy[c] for c in cores or after.busy)
    load_core = (
        None
        if pinning.load_core is None
        else after.busy[pinning.load_core] - before.busy[pinning.load_core]
    )
    return Cell(
        target=target,
        workload=workload.name,
        latency_ms=stack.latency_ms,
        concurrency=concurrency,
        load=result,
        upstream_per_request=calls_per_request,
        in_cell_calls=after.calls - before.calls,
        window_s=after.wall - before.wall,
        target_cpu_s=after.target_cpu - before.target_cpu,
        services_cpu_s=after.services_cpu - before.services_cpu,
        load_core_busy_s=load_core,
        foreign_cpu_s=max(0.0, busy - (after.ours_cpu - before.ours_cpu)),
    )


def peak_rss_of(child: Child) -> float | None:
    """The largest VmHWM in the child's process tree (one worker's peak, with workers)."""
    values = [v for v in (peak_rss_mb(pid) for pid in process_tree(child.pid)) if v is not None]
    return max(values) if values else None


def run_stack(
    stack: Stack,
    workloads: Sequence[Workload],
    targets: Sequence[str],
    concurrencies: Sequence[int],
    *,
    duration: int,
    warmup: int,
    pinning: Pinning,
    work_dir: Path,
) -> tuple[list[Cell], list[str]]:
    """Every cell of one stack, then the targets' peak RSS over all of them."""
    warnings = check_answers(stack, workloads)
    for warning in warnings:
        say(f"warning: {warning}")
    cells: list[Cell] = []
    for workload in workloads:
        for target in targets:
            script = load.write_script(
                work_dir / f"{workload.name}-{target}.lua",
                workload.body,
                headers_for(workload, target, stack),
            )
            for concurrency in concurrencies:
                cell = measure(
                    stack,
                    workload,
                    target,
                    concurrency,
                    duration=duration,
                    warmup=warmup,
                    pinning=pinning,
                    script=script,
                )
                say(
                    f"  {target:<8} {workload.name:<14} {stack.latency_ms:g} ms  "
                    f"c={concurrency:<3} p50 {cell.load.p50_ms:8.2f} ms  "
                    f"{cell.load.rps:9.1f} req/s  {cell.upstream_per_request:.2f} calls/req  "
                    f"{cell.cpu_ms_per_request:6.2f} CPU ms/req  foreign {cell.foreign_pct:.0f}%"
                )
                cells.append(cell)
    rss = {target: peak_rss_of(child) for target, (child, _) in stack.targets().items()}
    for cell in cells:
        cell.peak_rss_mb = rss[cell.target]
    return cells, warnings
