"""Measuring one stack: check the answers, then run every cell and account for it.

A cell is (workload, target, concurrency). Targets are the gateway, the floor (`floor.py`) and
the reference (`reference.py`); the workers phase measures the gateway alone, unpinned, with
one worker and then with two (`run_workers`). Around its timed wrk run we wait until the target
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
from bench.auth_targets import AUTH_TARGETS, measured_with
from bench.cell import PINNED, WORKERS, Cell, pooled
from bench.procs import (
    Child,
    Children,
    Pinning,
    core_busy_seconds,
    cpu_seconds,
    http_post,
    own_cpu_seconds,
    peak_rss_mb,
    process_tree,
    worker_pids,
)
from bench.report import WORKERS_CONCURRENCY
from bench.rounds import compared, in_rounds, order
from bench.stack import Stack, start_gateway, stop_server
from bench.workloads import Workload

TARGETS = ("floor", "gateway", "reference", *AUTH_TARGETS)
SETTLE_TIMEOUT = 60.0  # seconds for a target to drain its queue after a run
SETTLE_STEP = 0.25  # seconds between two looks at the counters
IDLE_CPU = 0.03  # CPU seconds per step under which the target counts as idle
PROBE_REQUESTS = 10  # sequential requests that count upstream calls exactly


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def headers_for(workload: Workload, target: str, stack: Stack) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if workload.needs_token and target.startswith("gateway"):
        headers["Authorization"] = f"Bearer {stack.tokens.get(target, stack.token)}"
    return headers


def url_for(workload: Workload, target: str, stack: Stack) -> str:
    base = stack.servers[target].url
    return f"{base}{workload.floor_path}" if target == "floor" else f"{base}/graphql"


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


def measuring(stack: Stack, workload: Workload, targets: Sequence[str]) -> list[str]:
    """The targets of `stack` that measure `workload`: those of the run, at the workload's
    latencies; the reference, which makes no upstream calls, at whatever latency."""
    return [
        t
        for t in targets
        if t in stack.servers
        and workload.runs_on(t)
        and (t == "reference" or workload.runs_at(stack.latency_ms))
        and measured_with(t, workload.name, [1, 32])  # the auth gateways: the Dashboard only
    ]


def check_answers(stack: Stack, workloads: Sequence[Workload], targets: Sequence[str]) -> list[str]:
    """Every target must answer without errors, and the floor and the reference must compute
    the same data as the gateway (else they do not do the same work). Returns warnings."""
    warnings = []
    for workload in workloads:
        answers = {t: ask(stack, workload, t) for t in measuring(stack, workload, targets)}
        base = "gateway" if "gateway" in answers else next(iter(answers), "")
        for target, data in answers.items():
            if data != answers[base]:
                warnings.append(
                    f"{workload.name} at {stack.latency_ms:g} ms: the {target}'s data differs "
                    f"from the {base}'s"
                )
    return warnings


@dataclass(frozen=True)
class Settled:
    calls: int  # the services' request count, no longer moving
    # when the target itself last worked (CPU above IDLE_CPU in a step), to half a step;
    # None if it was idle from the start
    worked_until: float | None


def settle(stack: Stack, target: Child) -> Settled:
    """The services' request count once it stops moving and the target is idle."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    worked_until = None
    calls, cpu = stack.upstream_requests(), cpu_seconds(process_tree(target.pid))
    while time.monotonic() < deadline:
        time.sleep(SETTLE_STEP)
        now_calls, now_cpu = stack.upstream_requests(), cpu_seconds(process_tree(target.pid))
        working = now_cpu - cpu > IDLE_CPU
        if now_calls == calls and not working:
            return Settled(now_calls, worked_until)
        if working:
            worked_until = time.monotonic() - SETTLE_STEP / 2
        calls, cpu = now_calls, now_cpu
    say(f"warning: {target.name} still busy {SETTLE_TIMEOUT:.0f} s after a run")
    return Settled(calls, worked_until)


def probe_calls(stack: Stack, workload: Workload, target: str) -> float:
    """Upstream calls per request, exactly: sequential requests between two settles."""
    child = stack.servers[target].child
    before = settle(stack, child).calls
    for _ in range(PROBE_REQUESTS):
        ask(stack, workload, target)
    return (settle(stack, child).calls - before) / PROBE_REQUESTS


@dataclass(frozen=True)
class Snapshot:
    wall: float
    calls: int
    target_cpu: float
    services_cpu: float
    ours_cpu: float  # every process of the run: stack, load generator, runner
    busy: dict[int, float]  # per core
    worker_cpu: dict[int, float]  # per process answering requests (see `worker_pids`)


def snapshot(stack: Stack, target: Child) -> Snapshot:
    ours = [pid for child in stack.children() for pid in process_tree(child.pid)]
    return Snapshot(
        wall=time.monotonic(),
        calls=stack.upstream_requests(),
        target_cpu=cpu_seconds(process_tree(target.pid)),
        services_cpu=cpu_seconds(process_tree(stack.services.pid)),
        ours_cpu=cpu_seconds(ours) + own_cpu_seconds(),
        busy=core_busy_seconds(),
        worker_cpu={pid: cpu_seconds([pid]) for pid in worker_pids(target.pid)},
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
    phase: str = PINNED,
    calls_per_request: float | None = None,
) -> Cell:
    """One cell; `calls_per_request`, when given, is the probe's answer of an earlier cell of
    the same target and workload (a round after the first need not probe again)."""
    server = stack.servers[target]
    child = server.child
    url = url_for(workload, target, stack)
    prefix = pinning.prefix(pinning.load_core)
    if calls_per_request is None:
        calls_per_request = probe_calls(stack, workload, target)
    if warmup:
        load.run_wrk(url, script, concurrency=concurrency, duration=warmup, prefix=prefix)
    settle(stack, child)
    before = snapshot(stack, child)
    result = load.run_wrk(url, script, concurrency=concurrency, duration=duration, prefix=prefix)
    wrk_done = time.monotonic()
    settled = settle(stack, child)
    after = snapshot(stack, child)
    for c in (child, stack.services):
        if not c.alive():
            raise c.failed("died during the run")
    cores = [c for c in (pinning.target_core, pinning.load_core) if c is not None]
    cores = cores or [c for c in pinning.cores if c in after.busy] or list(after.busy)
    busy = sum(after.busy[c] - before.busy[c] for c in cores)
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
        active_s=max(settled.worked_until or wrk_done, wrk_done) - before.wall,
        target_cpu_s=after.target_cpu - before.target_cpu,
        services_cpu_s=after.services_cpu - before.services_cpu,
        load_core_busy_s=load_core,
        foreign_cpu_s=max(0.0, busy - (after.ours_cpu - before.ours_cpu)),
        busy_s=busy,
        cores=len(cores),
        phase=phase,
        workers=server.workers,
        worker_cpu_s=[
            cpu - before.worker_cpu[pid]
            for pid, cpu in after.worker_cpu.items()
            if pid in before.worker_cpu
        ],
    )


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity
class Slot:
    """A cell to measure: what the run asks for, before it is measured."""

    workload: Workload
    target: str
    concurrency: int
    script: Path  # wrk's script: the workload's request with the target's headers


def worker_rss_of(child: Child) -> list[float]:
    """The peak RSS (VmHWM) of each process that answers requests: every worker of
    `bff serve --workers N` (not its supervisor), or the server itself."""
    values = (peak_rss_mb(pid) for pid in worker_pids(child.pid))
    return [v for v in values if v is not None]


def describe(cell: Cell) -> str:
    """One progress line (stderr) per cell."""
    target = cell.target if cell.phase == PINNED else f"{cell.target}-{cell.workers}w"
    return (
        f"  {target:<17} {cell.workload:<16} {cell.latency_ms:g} ms  "
        f"c={cell.concurrency:<3} p50 {cell.load.p50_ms:8.2f} ms  "
        f"{cell.load.rps:9.1f} req/s  {cell.upstream_per_request:.2f} calls/req  "
        f"{cell.cpu_ms_per_request:6.2f} CPU ms/req  foreign {cell.foreign_pct:.0f}%"
    )


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
    rounds: int = 1,
) -> tuple[list[Cell], list[str]]:
    """Every cell of one stack, then each target's peak RSS per worker over all of them.

    The cells a goal compares with each other are measured in `rounds` interleaved rounds
    after the others, and reported pooled (see `bench/rounds.py`)."""
    warnings = check_answers(stack, workloads, targets)
    for warning in warnings:
        say(f"warning: {warning}")
    slots: list[Slot] = []
    for workload in workloads:
        for target in measuring(stack, workload, targets):
            script = load.write_script(
                work_dir / f"{workload.name}-{target}.lua",
                workload.body,
                headers_for(workload, target, stack),
            )
            slots += [
                Slot(workload, target, concurrency, script)
                for concurrency in measured_with(
                    target, workload.name, workload.concurrencies(concurrencies)
                )
            ]
    once, interleaved = in_rounds(
        slots, [compared(s.workload.name, s.target, s.concurrency) for s in slots]
    )

    def run(slot: Slot, calls_per_request: float | None = None) -> Cell:
        cell = measure(
            stack,
            slot.workload,
            slot.target,
            slot.concurrency,
            duration=duration,
            warmup=warmup,
            pinning=pinning,
            script=slot.script,
            calls_per_request=calls_per_request,
        )
        say(describe(cell))
        return cell

    cells = [run(slot) for slot in once]
    measured: dict[Slot, list[Cell]] = {slot: [] for slot in interleaved}
    if interleaved:
        say(f"  {len(interleaved)} cells compared by the goals, in {rounds} interleaved rounds")
    for index in range(rounds if interleaved else 0):
        for slot in order(interleaved, index):
            done = measured[slot]
            done.append(run(slot, done[0].upstream_per_request if done else None))
    cells += [pooled(measured[slot]) for slot in interleaved]
    rss = {target: worker_rss_of(server.child) for target, server in stack.servers.items()}
    for cell in cells:
        cell.worker_rss_mb = rss[cell.target]
    return cells, warnings


def run_workers(
    children: Children,
    stack: Stack,
    workload: Workload,
    *,
    duration: int,
    warmup: int,
    pinning: Pinning,
    work_dir: Path,
) -> tuple[list[Cell], list[str]]:
    """The gateway with one worker, then with `--workers 2`, each at `WORKERS_CONCURRENCY`.

    `stack` must have been started unpinned with the gateway as its only target; the 2-worker
    gateway replaces it on the same config. Each gateway's peak RSS per worker is read before
    it stops.
    """
    cells: list[Cell] = []
    warnings: list[str] = []
    for workers in (1, 2):
        if workers > 1:
            stop_server(children, stack, "gateway")
            stack.servers["gateway"] = start_gateway(children, pinning, stack, workers)
        server = stack.servers["gateway"]
        warnings += check_answers(stack, [workload], ["gateway"])
        script = load.write_script(
            work_dir / f"{workload.name}-gateway-{workers}w.lua",
            workload.body,
            headers_for(workload, "gateway", stack),
        )
        cell = measure(
            stack,
            workload,
            "gateway",
            WORKERS_CONCURRENCY,
            duration=duration,
            warmup=warmup,
            pinning=pinning,
            script=script,
            phase=WORKERS,
        )
        cell.worker_rss_mb = worker_rss_of(server.child)
        if len(cell.worker_rss_mb) != workers:
            warnings.append(
                f"`bff serve --workers {workers}` ran {len(cell.worker_rss_mb)} worker process(es)"
            )
        say(describe(cell))
        cells.append(cell)
    for warning in warnings:
        say(f"warning: {warning}")
    return cells, warnings
