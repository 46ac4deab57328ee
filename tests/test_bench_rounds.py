"""The benchmark's interleaved rounds: which cells take part, in what order, and how a cell
measured in rounds becomes one row and its goals per-round ratios. Pure functions, no servers."""

from __future__ import annotations

import pytest

from bench.cell import Cell, pooled, round_ratios, rounds_note
from bench.load import LoadResult
from bench.rounds import compared, in_rounds, order


def result(requests: int, p50: float) -> LoadResult:
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    return LoadResult(requests, requests, 1.0, p50, p50, p50, p50, p50, errors)


def cell(target: str, calls: int, cpu_s: float, active_s: float = 1.0, p50: float = 10) -> Cell:
    return Cell(
        target=target,
        workload="dashboard",
        latency_ms=0.0,
        concurrency=32,
        load=result(calls // 5, p50),
        upstream_per_request=5.0,
        in_cell_calls=calls,
        window_s=active_s,
        active_s=active_s,
        target_cpu_s=cpu_s,
        services_cpu_s=0.1,
        load_core_busy_s=0.5,
        foreign_cpu_s=0.0,
        worker_cpu_s=[cpu_s],
    )


def test_the_cells_the_goals_compare_take_part() -> None:
    for target in ("gateway", "gateway-opaque", "gateway-jwt-redis", "gateway-redis"):
        assert compared("dashboard", target, 32)
    assert compared("dashboard-apollo", "gateway", 32)
    for workload in ("dashboard", "product"):  # the throughput goals: gateway ÷ floor
        assert compared(workload, "gateway", 32) and compared(workload, "floor", 32)
    assert not compared("dashboard", "gateway", 1)
    assert not compared("dashboard", "floor", 1)
    assert not compared("product", "reference", 32)
    assert not compared("dashboard-apollo", "reference", 32)


def test_a_lone_compared_cell_is_measured_once() -> None:
    assert in_rounds(["a", "b", "c"], [False, True, False]) == (["a", "b", "c"], [])
    assert in_rounds(["a", "b", "c"], [True, False, True]) == (["b"], ["a", "c"])


def test_rounds_alternate_direction() -> None:
    assert [order("abc", i) for i in range(3)] == [list("abc"), list("cba"), list("abc")]


def test_a_pooled_row_sums_the_rounds_and_keeps_them() -> None:
    rounds = [cell("gateway", 1000, 0.4, p50=10), cell("gateway", 3000, 0.8, 2.0, p50=30)]
    row = pooled(rounds)
    assert row.executed == 800  # (1000 + 3000) calls / 5 per request
    assert row.served_rps == 800 / 3.0
    assert row.cpu_ms_per_request == pytest.approx(1000 * 1.2 / 800)
    assert row.load.requests == 800 and row.load.p50_ms == 20  # the median of 10 and 30
    assert row.worker_cpu_s == [pytest.approx(1.2)]
    assert row.rounds == rounds
    assert pooled(rounds[:1]) is rounds[0]


def test_ratios_are_taken_round_by_round() -> None:
    base = pooled([cell("gateway", 1000, 0.4), cell("gateway", 500, 0.2)])
    other = pooled([cell("gateway-opaque", 900, 0.4), cell("gateway-opaque", 600, 0.2)])
    served = round_ratios(other, base, served_rps)
    assert served == [0.9, 1.2]
    assert rounds_note(served) == "; median of 2 interleaved rounds: 0.90, 1.20"
    once = round_ratios(cell("gateway-opaque", 900, 0.4), cell("gateway", 1000, 0.4), served_rps)
    assert once == [0.9]
    assert rounds_note(once) == ""


def served_rps(c: Cell) -> float:
    return c.served_rps
