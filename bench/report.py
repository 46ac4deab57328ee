"""Benchmark results: one `Cell` per measured combination, a markdown table and a JSON record.

Ratios are always gateway / floor measured in the same run on the same machine, so they
survive a change of machine far better than absolute numbers do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadResult

SATURATED = 90.0  # % of the load core above which it is called saturated
FOREIGN = 10.0  # % of a core used by other programs above which a cell is called disturbed

# Goals of the execution-speed issue, printed next to the measured ratios (never asserted).
GOALS: tuple[tuple[str, str, float, int, str, float], ...] = (
    ("Dashboard throughput, concurrency 32, 0 ms", "dashboard", 0, 32, "rps", 0.5),
    ("Dashboard p50, concurrency 1, 10 ms", "dashboard", 10, 1, "p50", 1.10),
    ("product lookup throughput, concurrency 32, 0 ms", "product", 0, 32, "rps", 0.4),
)


@dataclass
class Cell:
    target: str
    workload: str
    latency_ms: float
    concurrency: int
    load: LoadResult
    upstream_per_request: float  # exact, from sequential probe requests
    in_cell_calls: int  # upstream requests counted around the timed run (see measure.py)
    window_s: float  # wall time from before the run until the target was idle again
    target_cpu_s: float  # CPU time of the target process(es) in the window
    services_cpu_s: float  # CPU time of the services process in the window
    load_core_busy_s: float | None  # busy time of the services' core (None: not pinned)
    foreign_cpu_s: float  # busy core time none of our processes account for
    peak_rss_mb: float | None = None  # the target's VmHWM over its whole stack's run
    ratios: dict[str, float] = field(default_factory=dict)  # non-floor rows: vs the floor

    @property
    def key(self) -> tuple[str, float, int]:
        return self.workload, self.latency_ms, self.concurrency

    @property
    def executed(self) -> float:
        """Requests the target actually worked on: its upstream calls over the exact calls per
        request (wrk's completed count misses the requests cut off at the end, and its sent
        count includes some the target never read)."""
        if self.upstream_per_request > 0:
            return self.in_cell_calls / self.upstream_per_request
        return float(self.load.sent)

    @property
    def cpu_ms_per_request(self) -> float:
        """Target CPU time until it is idle again, per request it worked on."""
        return 1000 * self.target_cpu_s / self.executed if self.executed else 0.0

    @property
    def load_core_pct(self) -> float | None:
        if self.load_core_busy_s is None or not self.window_s:
            return None
        return 100 * self.load_core_busy_s / self.window_s

    @property
    def foreign_pct(self) -> float:
        return 100 * self.foreign_cpu_s / self.window_s if self.window_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "workload": self.workload,
            "latency_ms": self.latency_ms,
            "concurrency": self.concurrency,
            "load": self.load.to_json(),
            "upstream_calls_per_request": self.upstream_per_request,
            "in_cell_upstream_calls": self.in_cell_calls,
            "executed_requests": self.executed,
            "window_s": self.window_s,
            "target_cpu_s": self.target_cpu_s,
            "cpu_ms_per_request": self.cpu_ms_per_request,
            "services_cpu_s": self.services_cpu_s,
            "load_core_pct": self.load_core_pct,
            "foreign_cpu_pct": self.foreign_pct,
            "peak_rss_mb": self.peak_rss_mb,
            "ratios_vs_floor": self.ratios,
        }


def attach_ratios(cells: Sequence[Cell]) -> None:
    """Give every non-floor cell its p50 and req/s ratios to the floor cell of the same key."""
    floors = {c.key: c for c in cells if c.target == "floor"}
    for cell in cells:
        floor = floors.get(cell.key)
        if cell.target == "floor" or floor is None:
            continue
        if floor.load.p50_ms:
            cell.ratios["p50"] = cell.load.p50_ms / floor.load.p50_ms
        if floor.load.rps:
            cell.ratios["rps"] = cell.load.rps / floor.load.rps


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(cells: Sequence[Cell]) -> str:
    header = (
        "| target | workload | upstream latency | conc | p50 ms | p99 ms | req/s "
        "| upstream calls/req | CPU ms/req | peak RSS MB | p50 gw/floor | req/s gw/floor "
        "| load core % | errors |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    order = sorted(cells, key=lambda c: (c.latency_ms, c.workload, c.concurrency, c.target))
    for c in order:
        lines.append(
            "| "
            + " | ".join(
                [
                    c.target,
                    c.workload,
                    f"{c.latency_ms:g} ms",
                    str(c.concurrency),
                    _num(c.load.p50_ms, 2),
                    _num(c.load.p99_ms, 2),
                    _num(c.load.rps, 0),
                    _num(c.upstream_per_request, 2),
                    _num(c.cpu_ms_per_request, 2),
                    _num(c.peak_rss_mb, 0),
                    _num(c.ratios.get("p50"), 2),
                    _num(c.ratios.get("rps"), 2),
                    _num(c.load_core_pct, 0),
                    str(c.load.error_count),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def headline(cells: Sequence[Cell]) -> list[str]:
    """The ratios the execution-speed goals are stated in, where this run measured them."""
    gateway = {c.key: c for c in cells if c.target == "gateway"}
    lines = []
    for label, workload, latency, concurrency, metric, goal in GOALS:
        cell = gateway.get((workload, latency, concurrency))
        if cell is None or metric not in cell.ratios:
            continue
        bound = "≥" if metric == "rps" else "≤"
        lines.append(f"- {label}: gateway/floor = {cell.ratios[metric]:.2f} (goal {bound} {goal})")
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
    return ", ".join(
        f"{c.target}/{c.workload}/{c.latency_ms:g} ms/c={c.concurrency}" for c in cells
    )


def markdown(cells: Sequence[Cell], meta: dict[str, Any]) -> str:
    git = meta["git"]
    settings = meta["settings"]
    dirty = " (with uncommitted changes)" if git["dirty"] else ""
    parts = [
        f"# bff benchmark, {meta['date']}, commit {git['short']}{dirty}",
        "",
        f"- machine: {meta['cpu']['count']} CPUs ({meta['cpu']['model']}), "
        f"Python {meta['python']}, {meta['wrk']}",
        f"- pinning: {meta['pinning']}",
        f"- each cell: {settings['duration_s']} s of `wrk -t1` after {settings['warmup_s']} s "
        f"of warm-up; floor upstream client: {settings['floor_client']}",
        "- ratios: gateway ÷ floor in the same run (p50: lower is better, 1.00 = the floor; "
        "req/s: higher is better, 1.00 = the floor)",
        "",
        table(cells),
    ]
    heads = headline(cells)
    if heads:
        parts += ["", "Headline ratios:", "", *heads]
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
