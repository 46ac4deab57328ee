"""One measured cell: what a (workload, target, concurrency) run on one stack gave.

`measure.py` makes them, `report.py` turns them into tables and goal lines. The raw figures
(counts, CPU seconds, windows) are kept as measured; everything derived (served req/s, CPU per
request, percentages) is a property, so a row pooled from several rounds (`pooled`) derives its
figures from the rounds' sums, exactly as a single run does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.load import LoadResult

PINNED = "pinned"  # the main phase: one target on its own core
WORKERS = "workers"  # `bff serve --workers 2` against one worker, nothing pinned


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
    active_s: float  # wall time from before the run until the end of the run or of the drain
    target_cpu_s: float  # CPU time of the target process(es) in the window
    services_cpu_s: float  # CPU time of the services process in the window
    load_core_busy_s: float | None  # busy time of the services' core (None: not pinned)
    foreign_cpu_s: float  # busy core time none of our processes account for
    busy_s: float = 0.0  # busy time of all the run's cores in the window
    cores: int = 1  # how many cores `busy_s` sums over
    phase: str = PINNED
    workers: int = 1  # processes of the target answering requests
    worker_rss_mb: list[float] = field(default_factory=list)  # peak RSS (VmHWM) of each
    worker_cpu_s: list[float] = field(default_factory=list)  # CPU time of each in the window
    ratios: dict[str, float] = field(default_factory=dict)  # gateway rows: vs the floor
    ref_ratios: dict[str, float] = field(default_factory=dict)  # gateway rows: vs the reference
    rounds: list[Cell] = field(default_factory=list)  # a pooled row: its rounds, in run order

    @property
    def key(self) -> tuple[str, float, int]:
        return self.workload, self.latency_ms, self.concurrency

    @property
    def peak_rss_mb(self) -> float | None:
        """The largest worker's peak RSS (with one worker: the target's)."""
        return max(self.worker_rss_mb) if self.worker_rss_mb else None

    @property
    def executed(self) -> float:
        """Requests the target actually worked on: its upstream calls over the exact calls per
        request (wrk's completed count misses the requests cut off at the end, and its sent
        count includes some the target never read). The reference makes no upstream calls:
        for it, the requests wrk sent."""
        if self.upstream_per_request > 0:
            return self.in_cell_calls / self.upstream_per_request
        return float(self.load.sent)

    @property
    def served_rps(self) -> float:
        """Requests the target worked on per second, from the start of the run until it
        stopped working on them (the end of the run, or of the drain after it): the target's
        throughput, and the one the ratios use.

        wrk's completed count is exact for a fast target but coarse for a slow one at high
        concurrency: it answers its connections in rounds (all of them at about the same
        time), so a run of a few seconds completes a whole number of rounds and wrk's req/s
        can be off by a round (or read 0). The requests the target worked on include those
        cut off when wrk stops, and so does the window (to half a settle step)."""
        return self.executed / self.active_s if self.active_s else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """Target CPU time until it is idle again, per request it worked on."""
        return 1000 * self.target_cpu_s / self.executed if self.executed else 0.0

    @property
    def target_cpu_pct(self) -> float:
        """The target's CPU time over the window, in % of one core (200 = two cores busy)."""
        return 100 * self.target_cpu_s / self.window_s if self.window_s else 0.0

    @property
    def rps_per_core(self) -> float:
        """Served req/s per core the target kept busy: its throughput with the CPU it got."""
        return self.served_rps * 100 / self.target_cpu_pct if self.target_cpu_pct else 0.0

    @property
    def load_core_pct(self) -> float | None:
        if self.load_core_busy_s is None or not self.window_s:
            return None
        return 100 * self.load_core_busy_s / self.window_s

    @property
    def machine_pct(self) -> float:
        """Busy time of all the run's cores, in % of all of them."""
        return 100 * self.busy_s / (self.window_s * self.cores) if self.window_s else 0.0

    @property
    def foreign_pct(self) -> float:
        return 100 * self.foreign_cpu_s / self.window_s if self.window_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "target": self.target,
            "workers": self.workers,
            "workload": self.workload,
            "latency_ms": self.latency_ms,
            "concurrency": self.concurrency,
            "load": self.load.to_json(),
            "upstream_calls_per_request": self.upstream_per_request,
            "in_cell_upstream_calls": self.in_cell_calls,
            "executed_requests": self.executed,
            "window_s": self.window_s,
            "active_s": self.active_s,
            "served_rps": self.served_rps,
            "target_cpu_s": self.target_cpu_s,
            "cpu_ms_per_request": self.cpu_ms_per_request,
            "services_cpu_s": self.services_cpu_s,
            "load_core_pct": self.load_core_pct,
            "machine_busy_pct": self.machine_pct,
            "foreign_cpu_pct": self.foreign_pct,
            "peak_rss_mb": self.peak_rss_mb,
            "worker_peak_rss_mb": self.worker_rss_mb,
            "worker_cpu_s": self.worker_cpu_s,
            "ratios_vs_floor": self.ratios,
            "ratios_vs_reference": self.ref_ratios,
            **({"rounds": [r.to_json() for r in self.rounds]} if self.rounds else {}),
        }


def pooled(rounds: Sequence[Cell]) -> Cell:
    """One row for a cell measured in several rounds: its raw figures summed (so served req/s
    and CPU per request are those of all the rounds together), wrk's results pooled as
    `LoadResult.pooled` says, and the rounds kept for the ratios taken round by round."""
    if len(rounds) == 1:
        return rounds[0]
    first = rounds[0]
    load_core = [r.load_core_busy_s for r in rounds]
    return replace(
        first,
        load=LoadResult.pooled([r.load for r in rounds]),
        in_cell_calls=sum(r.in_cell_calls for r in rounds),
        window_s=sum(r.window_s for r in rounds),
        active_s=sum(r.active_s for r in rounds),
        target_cpu_s=sum(r.target_cpu_s for r in rounds),
        services_cpu_s=sum(r.services_cpu_s for r in rounds),
        load_core_busy_s=None if None in load_core else sum(v or 0.0 for v in load_core),
        foreign_cpu_s=sum(r.foreign_cpu_s for r in rounds),
        busy_s=sum(r.busy_s for r in rounds),
        worker_cpu_s=[sum(cpu) for cpu in zip(*(r.worker_cpu_s for r in rounds), strict=False)],
        ratios={},
        ref_ratios={},
        rounds=list(rounds),
    )


def round_ratios(cell: Cell, base: Cell, figure: Callable[[Cell], float]) -> list[float]:
    """`figure(cell) / figure(base)` in every round the two were measured in together, or
    once, for the whole cells, when they were not measured in the same rounds."""
    if cell.rounds and len(cell.rounds) == len(base.rounds):
        pairs = list(zip(cell.rounds, base.rounds, strict=True))
    else:
        pairs = [(cell, base)]
    return [figure(c) / figure(b) for c, b in pairs if figure(b)]


def rounds_note(ratios: Sequence[float], before: str = "; ", after: str = "") -> str:
    """How a ratio was taken, when it is a median of rounds, between `before` and `after`;
    nothing when it was measured once."""
    if len(ratios) < 2:
        return ""
    listed = ", ".join(f"{r:.2f}" for r in ratios)
    return f"{before}median of {len(ratios)} interleaved rounds: {listed}{after}"
