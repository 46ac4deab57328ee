"""Interleaved rounds: the cells a goal compares with each other, measured in turns.

A ratio of two cells measured at different times measures the machine as much as the
targets. On a machine shared with other work, a target's throughput moves by tens of percent
from one cell to the next, and drifts over a run: cells measured later see other conditions.
A difference of 10 % (the token kinds' goal) drowns in that. So the cells that a goal divides
by each other are measured in rounds, each round measuring each of them once, back to back:

- the throughput goals' cells (the Dashboard and the product lookup at c=32) on the gateway
  and the floor;
- the Dashboard at c=32 on the plain `gateway` and on every target of `auth_targets` (the
  token kinds and their baseline), at each latency;
- the Apollo-style Dashboard at c=32 and 0 ms on the gateway, beside the plain Dashboard.

Each goal takes its ratio within every round (two cells a minute apart at most) and reports
the median of the rounds' ratios: one disturbed round moves it little. Rounds alternate in
direction (A B C, then C B A, then A B C, ...), so a steady drift over the run does not
always favour the cell measured first. Every other cell is measured once, before the rounds.

The table keeps one row per cell: a cell measured in rounds is pooled over them (`pooled`:
requests, CPU and time summed, latency percentiles the median of the rounds'); the JSON
record keeps every round. `--rounds 1` measures every cell once, as a plain run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from bench.auth_targets import AUTH_CONCURRENCY, AUTH_WORKLOAD, is_auth_target
from bench.report import APOLLO_CELL, APOLLO_WORKLOAD, RATIO_GOALS

ROUNDS = 3  # default: the median of three survives one disturbed round

T = TypeVar("T")


def compared(workload: str, target: str, concurrency: int) -> bool:
    """Whether the cell (`workload`, `target`, `concurrency`) is one a goal divides by another
    measured in the same stack (the latency is the stack's: the workload knows where it runs)."""
    if target in ("gateway", "floor") and any(
        goal.metric == "rps" and (goal.workload, goal.concurrency) == (workload, concurrency)
        for goal in RATIO_GOALS
    ):
        return True  # a throughput goal: the gateway ÷ the floor
    if workload == AUTH_WORKLOAD and concurrency == AUTH_CONCURRENCY:
        return target == "gateway" or is_auth_target(target)
    _, apollo_concurrency = APOLLO_CELL
    return workload == APOLLO_WORKLOAD and concurrency == apollo_concurrency and target == "gateway"


def in_rounds(slots: Sequence[T], is_compared: Sequence[bool]) -> tuple[list[T], list[T]]:
    """(`slots` measured once, `slots` measured in rounds), each in their given order.

    Rounds need something to compare: a lone compared cell (say, `--targets gateway,floor`)
    is measured once, as any other."""
    compared_slots = [s for s, c in zip(slots, is_compared, strict=True) if c]
    if len(compared_slots) < 2:
        return list(slots), []
    return [s for s, c in zip(slots, is_compared, strict=True) if not c], compared_slots


def order(slots: Sequence[T], round_index: int) -> list[T]:
    """The order of round `round_index` (from 0): forward, then backward, in turn."""
    return list(slots) if round_index % 2 == 0 else list(reversed(slots))
