"""Benchmark results: one `Cell` per measured combination, tables and a JSON record.

Ratios are always measured in the same run on the same machine, so they survive a change of
machine far better than absolute numbers do: gateway / floor (the same upstream calls with no
GraphQL) and gateway / reference (stock strawberry answering from memory, no upstream calls).

The goals of the execution-speed issue are printed as headline lines, each PASS or FAIL
against what this run measured (or "not measured" when the run left its cells out). They
are reported, never asserted: the benchmark measures, it does not gate.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import auth_targets
from bench.cell import PINNED, WORKERS, Cell, round_ratios, rounds_note

SATURATED = 90.0  # % of the load core above which it is called saturated
FOREIGN = 10.0  # % of a core used by other programs above which a cell is called disturbed


@dataclass(frozen=True)
class RatioGoal:
    """A goal stated as gateway ÷ floor in one cell of the pinned phase."""

    label: str
    workload: str
    latency_ms: float
    concurrency: int
    metric: str  # "rps" (higher is better) or "p50" (lower is better)
    bound: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.metric == "rps" else ratio <= self.bound


RATIO_GOALS = (
    RatioGoal("Dashboard throughput, c=32, 0 ms", "dashboard", 0, 32, "rps", 0.7),
    RatioGoal("Dashboard p50, c=1, 10 ms", "dashboard", 10, 1, "p50", 1.05),
    RatioGoal("product lookup throughput, c=32, 0 ms", "product", 0, 32, "rps", 0.5),
)
APOLLO_GOAL = 1.2  # the Apollo-style Dashboard's CPU per request at most this times the plain one's
APOLLO_CELL = (0.0, 32)  # (latency ms, concurrency) of that comparison
APOLLO_WORKLOAD = "dashboard-apollo"
GROWTH_GOAL = 10.0  # `first: 500` CPU per request at most this times `first: 20`'s
GROWTH_CELL = (0.0, 1)  # (latency ms, concurrency) of the comparison
RSS_GOAL_MB = 120.0  # peak RSS of every gateway worker
WORKERS_GOAL = 1.7  # req/s of `--workers 2` at least this times one worker's
WORKERS_CONCURRENCY = 64
WORKERS_LATENCY_MS = 0.0
WORKERS_WORKLOAD = "dashboard"


def attach_ratios(cells: Sequence[Cell]) -> None:
    """Give every gateway cell of the pinned phase its p50 and req/s ratios to the floor cell
    of the same key and to the reference cell of the same workload and concurrency (the
    reference makes no upstream calls, so it is measured at one latency only)."""
    pinned = [c for c in cells if c.phase == PINNED]
    floors = {c.key: c for c in pinned if c.target == "floor"}
    references = {(c.workload, c.concurrency): c for c in pinned if c.target == "reference"}
    for cell in pinned:
        if cell.target != "gateway":
            continue
        _ratios(cell, floors.get(cell.key), cell.ratios)
        _ratios(cell, references.get((cell.workload, cell.concurrency)), cell.ref_ratios)


def _ratios(cell: Cell, base: Cell | None, into: dict[str, float]) -> None:
    if base is None:
        return
    if base.load.p50_ms:
        into["p50"] = cell.load.p50_ms / base.load.p50_ms
    if base.served_rps:
        into["rps"] = cell.served_rps / base.served_rps


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _row(values: Sequence[str]) -> str:
    return "| " + " | ".join(values) + " |"


def _header(names: Sequence[str]) -> list[str]:
    return [_row(names), "|" + "---|" * len(names)]


def table(cells: Sequence[Cell]) -> str:
    """The pinned phase: one row per cell; the reference's upstream latency is `in memory`."""
    lines = _header(
        [
            "target",
            "workload",
            "upstream latency",
            "conc",
            "p50 ms",
            "p99 ms",
            "req/s",
            "served req/s",
            "upstream calls/req",
            "CPU ms/req",
            "peak RSS MB",
            "p50 gw/floor",
            "served gw/floor",
            "p50 gw/ref",
            "served gw/ref",
            "load core %",
            "errors",
        ]
    )
    lowest = min((c.latency_ms for c in cells), default=0.0)  # the reference's rows go there

    def position(c: Cell) -> tuple[float, str, int, str]:
        latency = lowest if c.target == "reference" else c.latency_ms
        return latency, c.workload, c.concurrency, c.target

    order = sorted(cells, key=position)
    for c in order:
        latency = "in memory" if c.target == "reference" else f"{c.latency_ms:g} ms"
        lines.append(
            _row(
                [
                    c.target,
                    c.workload,
                    latency,
                    str(c.concurrency),
                    _num(c.load.p50_ms, 2),
                    _num(c.load.p99_ms, 2),
                    _num(c.load.rps, 0),
                    _num(c.served_rps, 0),
                    _num(c.upstream_per_request, 2),
                    _num(c.cpu_ms_per_request, 2),
                    _num(c.peak_rss_mb, 0),
                    _num(c.ratios.get("p50"), 2),
                    _num(c.ratios.get("rps"), 2),
                    _num(c.ref_ratios.get("p50"), 2),
                    _num(c.ref_ratios.get("rps"), 2),
                    _num(c.load_core_pct, 0),
                    str(c.load.error_count),
                ]
            )
        )
    return "\n".join(lines)


def workers_table(cells: Sequence[Cell]) -> str:
    """The workers phase: the gateway with one worker and with `--workers 2`, unpinned."""
    lines = _header(
        [
            "target",
            "workers",
            "workload",
            "upstream latency",
            "conc",
            "p50 ms",
            "p99 ms",
            "req/s",
            "served req/s",
            "CPU ms/req",
            "gateway CPU %",
            "all cores busy %",
            "peak RSS MB per worker",
            "errors",
        ]
    )
    for c in sorted(cells, key=lambda c: c.workers):
        lines.append(
            _row(
                [
                    c.target,
                    str(c.workers),
                    c.workload,
                    f"{c.latency_ms:g} ms",
                    str(c.concurrency),
                    _num(c.load.p50_ms, 2),
                    _num(c.load.p99_ms, 2),
                    _num(c.load.rps, 0),
                    _num(c.served_rps, 0),
                    _num(c.cpu_ms_per_request, 2),
                    _num(c.target_cpu_pct, 0),
                    _num(c.machine_pct, 0),
                    ", ".join(f"{v:.0f}" for v in c.worker_rss_mb) or "-",
                    str(c.load.error_count),
                ]
            )
        )
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _figure(cell: Cell, metric: str) -> str:
    if metric == "rps":
        return f"{cell.served_rps:,.0f} served req/s"
    return f"{cell.load.p50_ms:,.2f} ms"


def _ratio_line(goal: RatioGoal, cells: dict[tuple[str, float, int], dict[str, Cell]]) -> str:
    found = cells.get((goal.workload, goal.latency_ms, goal.concurrency), {})
    gateway, floor = found.get("gateway"), found.get("floor")
    bound = "≥" if goal.metric == "rps" else "≤"
    if gateway is None or floor is None or goal.metric not in gateway.ratios:
        return f"- not measured: {goal.label} (needs the gateway and the floor in that cell)"
    ratio = gateway.ratios[goal.metric]
    ratios: list[float] = []
    if goal.metric == "rps":  # measured in interleaved rounds: the median of their ratios
        ratios = round_ratios(gateway, floor, lambda c: c.served_rps)
        ratio = statistics.median(ratios)
    figures = [
        f"gateway {_figure(gateway, goal.metric)}",
        f"floor {_figure(floor, goal.metric)}",
    ]
    reference = gateway.ref_ratios.get(goal.metric)
    if reference is not None:
        figures.append(f"gateway/reference = {reference:.2f}")
    return (
        f"- {_verdict(goal.met(ratio))}: {goal.label}: gateway/floor = {ratio:.2f} "
        f"(goal {bound} {goal.bound:.2f}{rounds_note(ratios)}); " + ", ".join(figures)
    )


def _growth_line(cells: dict[tuple[str, float, int], dict[str, Cell]]) -> str:
    latency, concurrency = GROWTH_CELL
    small = cells.get(("dashboard", latency, concurrency), {})
    large = cells.get(("dashboard-500", latency, concurrency), {})
    where = f"c={concurrency}, {latency:g} ms"
    label = f"`first: 500` CPU per request ÷ `first: 20`'s, {where}"
    growth = {
        target: large[target].cpu_ms_per_request / small[target].cpu_ms_per_request
        for target in ("gateway", "floor", "reference")
        if target in small and target in large and small[target].cpu_ms_per_request
    }
    if "gateway" not in growth:
        return f"- not measured: {label} (needs dashboard and dashboard-500 on the gateway)"
    figures = [
        f"gateway {large['gateway'].cpu_ms_per_request:,.1f} vs "
        f"{small['gateway'].cpu_ms_per_request:,.2f} CPU ms/req"
    ]
    figures += [f"{target} {value:.1f}x" for target, value in growth.items() if target != "gateway"]
    return (
        f"- {_verdict(growth['gateway'] <= GROWTH_GOAL)}: {label}: "
        f"{growth['gateway']:.1f}x (goal ≤ {GROWTH_GOAL:g}x); " + ", ".join(figures)
    )


def _apollo_line(cells: dict[tuple[str, float, int], dict[str, Cell]]) -> str:
    latency, concurrency = APOLLO_CELL
    where = f"c={concurrency}, {latency:g} ms"
    label = f"Apollo-style Dashboard CPU per request ÷ plain Dashboard's, {where}"
    plain = cells.get(("dashboard", latency, concurrency), {}).get("gateway")
    apollo = cells.get((APOLLO_WORKLOAD, latency, concurrency), {}).get("gateway")
    if plain is None or apollo is None or not plain.cpu_ms_per_request:
        return f"- not measured: {label} (needs dashboard and dashboard-apollo on the gateway)"
    ratios = round_ratios(apollo, plain, lambda c: c.cpu_ms_per_request)
    ratio = statistics.median(ratios)
    return (
        f"- {_verdict(ratio <= APOLLO_GOAL)}: {label}: {ratio:.2f}x (goal ≤ {APOLLO_GOAL:g}x"
        f"{rounds_note(ratios)}); gateway {apollo.cpu_ms_per_request:,.2f} vs "
        f"{plain.cpu_ms_per_request:,.2f} CPU ms/req"
    )


def _rss_line(cells: Sequence[Cell]) -> str:
    label = "peak RSS per gateway worker"
    seen: dict[str, list[float]] = {}
    for c in cells:
        if c.target == "gateway" and c.worker_rss_mb:
            seen[_server_name(c)] = c.worker_rss_mb
    if not seen:
        return f"- not measured: {label}"
    worst = max(v for values in seen.values() for v in values)
    figures = [f"{name}: {', '.join(f'{v:.0f}' for v in values)}" for name, values in seen.items()]
    return (
        f"- {_verdict(worst <= RSS_GOAL_MB)}: {label}: largest {worst:.0f} MB "
        f"(goal ≤ {RSS_GOAL_MB:.0f} MB); " + "; ".join(figures) + " MB"
    )


def _server_name(cell: Cell) -> str:
    if cell.phase == WORKERS:
        return f"unpinned, {cell.workers} worker{'s' if cell.workers > 1 else ''}"
    return f"pinned, {cell.latency_ms:g} ms stack"


def _workers_line(cells: Sequence[Cell]) -> list[str]:
    by_workers = {c.workers: c for c in cells if c.phase == WORKERS}
    label = (
        f"`bff serve --workers 2` ÷ one worker, {WORKERS_WORKLOAD} served req/s at "
        f"c={WORKERS_CONCURRENCY}, {WORKERS_LATENCY_MS:g} ms, unpinned"
    )
    one, two = by_workers.get(1), by_workers.get(2)
    if one is None or two is None or not one.served_rps:
        return [f"- not measured: {label} (skipped, or the gateway was not a target)"]
    ratio = two.served_rps / one.served_rps
    line = (
        f"- {_verdict(ratio >= WORKERS_GOAL)}: {label}: {ratio:.2f}x "
        f"(goal ≥ {WORKERS_GOAL:g}x); 1 worker {one.served_rps:,.0f} req/s at "
        f"{one.target_cpu_pct:.0f}% CPU, 2 workers {two.served_rps:,.0f} req/s at "
        f"{two.target_cpu_pct:.0f}% CPU (wrk's req/s: {one.load.rps:,.0f} and "
        f"{two.load.rps:,.0f})"
    )
    if one.rps_per_core and two.worker_cpu_s:
        kept = two.rps_per_core / one.rps_per_core
        split = "/".join(f"{100 * s / sum(two.worker_cpu_s):.0f}%" for s in two.worker_cpu_s)
        line += (
            f"; per core of gateway CPU: 1 worker {one.rps_per_core:,.0f} req/s, 2 workers "
            f"{two.rps_per_core:,.0f} req/s ({kept:.2f} kept; the two workers' CPU split "
            f"{split}): with two cores to themselves, two workers would serve about "
            f"{2 * kept:.2f}x one worker (a projection, not a measurement)"
        )
    caveat = (
        f"  Caveat: this machine has {two.cores} cores and nothing is pinned, so the load "
        "generator and the six upstream services compete with the workers for the same cores"
    )
    if two.cores <= 2:
        caveat += (
            ": on two cores the workers can never have both to themselves, and the ratio "
            "understates what a second core gives the gateway on a machine where the load "
            "comes from elsewhere."
        )
    else:
        caveat += "; the ratio is a lower bound of what a second core gives the gateway."
    return [line, caveat]


def headline(cells: Sequence[Cell]) -> list[str]:
    """The execution-speed goals, each PASS or FAIL against this run (or not measured)."""
    pinned: dict[tuple[str, float, int], dict[str, Cell]] = {}
    for c in cells:
        if c.phase == PINNED and c.target != "reference":
            pinned.setdefault(c.key, {})[c.target] = c
    for c in cells:  # the reference's one latency stands for all
        if c.phase == PINNED and c.target == "reference":
            for key in [k for k in pinned if (k[0], k[2]) == (c.workload, c.concurrency)]:
                pinned[key]["reference"] = c
    lines = [_ratio_line(goal, pinned) for goal in RATIO_GOALS]
    lines += auth_targets.goal_lines(cells)
    lines.append(_growth_line(pinned))
    lines.append(_apollo_line(pinned))
    lines.append(_rss_line(cells))
    lines += _workers_line(cells)
    return lines


def notes(cells: Sequence[Cell]) -> list[str]:
    found = []
    busy = [c for c in cells if (c.load_core_pct or 0) >= SATURATED]
    if busy:
        found.append(
            f"- The load core (services and wrk) was ≥ {SATURATED:.0f}% busy in: {_names(busy)}. "
            "There the upstreams and the load generator, not the target, may limit req/s."
        )
    crowded = [c for c in cells if c.foreign_pct >= FOREIGN]
    if crowded:
        found.append(
            f"- Other programs used ≥ {FOREIGN:.0f}% of a core during: {_names(crowded)}. "
            "Those cells are disturbed; run again on a quiet machine."
        )
    failed = [c for c in cells if c.load.error_count]
    if failed:
        found.append(f"- Requests failed (see `errors` in the JSON) in: {_names(failed)}.")
    return found


def _names(cells: Sequence[Cell]) -> str:
    def name(c: Cell) -> str:
        target = c.target if c.phase == PINNED else f"{c.target} ({_server_name(c)})"
        return f"{target}/{c.workload}/{c.latency_ms:g} ms/c={c.concurrency}"

    return ", ".join(name(c) for c in cells)


def markdown(cells: Sequence[Cell], meta: dict[str, Any]) -> str:
    git = meta["git"]
    settings = meta["settings"]
    dirty = " (with uncommitted changes)" if git["dirty"] else ""
    pinned = [c for c in cells if c.phase == PINNED]
    workers = [c for c in cells if c.phase == WORKERS]
    parts = [
        f"# bff benchmark, {meta['date']}, commit {git['short']}{dirty}",
        "",
        f"- machine: {meta['cpu']['count']} CPUs ({meta['cpu']['model']}), "
        f"Python {meta['python']}, {meta['wrk']}",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()),
        f"- pinning: {meta['pinning']}",
        *([f"- Redis of the token kinds' targets: {meta['redis']}"] if meta.get("redis") else []),
        f"- each cell: {settings['duration_s']} s of `wrk -t1` after {settings['warmup_s']} s "
        f"of warm-up; floor upstream client: {settings['floor_client']}",
        f"- the cells the goals compare with each other (the Dashboard at c=32 on the gateway "
        f"and the token kinds' targets, the Apollo-style Dashboard): "
        f"{settings.get('rounds', 1)} interleaved rounds, each goal the median of its rounds' "
        "ratios, each row pooled over its rounds",
        "- floor: the same upstream calls with no GraphQL; reference: stock strawberry, an "
        "async resolver per field, answering from memory (no upstream calls, so measured once "
        "and compared with the gateway at every latency)",
        "- ratios: gateway ÷ floor and gateway ÷ reference in the same run (p50: lower is "
        "better, 1.00 = as fast; served req/s, the requests the target worked on per second "
        "of work: higher is better, 1.00 = as many)",
    ]
    if pinned:
        parts += ["", table(pinned)]
    if workers:
        parts += [
            "",
            f"Workers (nothing pinned; services, wrk and the gateway share all "
            f"{workers[0].cores} cores):",
            "",
            workers_table(workers),
        ]
    parts += ["", "Goals:", "", *headline(cells)]
    found = notes(cells)
    if found:
        parts += ["", "Notes:", "", *found]
    for warning in meta.get("warnings", []):
        parts += ["", f"Warning: {warning}"]
    return "\n".join(parts) + "\n"


def save(directory: Path, stem: str, text: str, record: dict[str, Any]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / f"{stem}.md"
    js = directory / f"{stem}.json"
    md.write_text(text)
    js.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return md, js
