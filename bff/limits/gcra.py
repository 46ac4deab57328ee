"""GCRA (the generic cell rate algorithm): rate-limit verdicts as a pure function.

A budget of `limit` requests per `period` is kept as one number per client, the theoretical
arrival time (TAT): the time at which the client's budget would be full again. A request at
`now` moves the TAT one emission interval (`period / limit`) later; it is refused when that
would put the TAT more than one period ahead of `now`. Bursts of up to `limit` requests pass,
then requests pass at the steady rate. One number per client, one read and one write per
request: cheap in memory, and atomic in Redis as a short Lua script (`bff.limits.stores`).

Times are integer microseconds, so the Python and Lua versions compute exactly the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rule:
    """A budget: `limit` requests per `period` seconds."""

    limit: int
    period: float
    period_us: int = field(init=False)
    interval_us: int = field(init=False)  # the emission interval: the budget one request uses

    def __post_init__(self) -> None:  # once per rule, not per request
        period_us = max(1, round(self.period * MICROS))
        object.__setattr__(self, "period_us", period_us)
        object.__setattr__(self, "interval_us", max(1, period_us // self.limit))


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """One per limited request: a struct, built in C (see `UpstreamResponse`)."""

    allowed: bool
    limit: int
    remaining: int  # requests still allowed right now
    retry_after: float  # seconds until a request would pass (0 when allowed)
    reset: float  # seconds until the whole budget is back

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` in whole seconds, rounded up (SPEC section 10), at least 1."""
        return str(max(1, math.ceil(self.retry_after)))

    @classmethod
    def of(cls, rule: Rule, allowed: bool, wait_us: int, backlog_us: int) -> Verdict:
        """The verdict from a store's answer: `backlog_us` is the TAT minus now after it."""
        remaining = max(0, (rule.period_us - backlog_us) // rule.interval_us)
        return cls(allowed, rule.limit, remaining, wait_us / MICROS, max(0, backlog_us) / MICROS)


def decide(tat: int | None, now: int, interval: int, period: int) -> tuple[bool, int, int]:
    """One request at `now` against `tat`: (allowed, the TAT to store, microseconds to wait).

    The TAT to store is unchanged when the request is refused: refused requests do not use
    budget, so a client hammering a closed door gets back in at the steady rate.
    """
    start = now if tat is None or tat < now else tat
    new_tat = start + interval
    allow_at = new_tat - period
    if now < allow_at:
        return False, start, allow_at - now
    return True, new_tat, 0
