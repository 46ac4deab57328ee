"""The soak's verdicts: which errors are documented fail-closed cases, per-period figures, the
goal lines and the markdown report. Pure functions over outcomes, no servers.

An error is *documented* (and does not fail the first goal) in exactly these cases:

- `redis`: a 503 while Redis was away (from its stop until `REDIS_GRACE` seconds after it
  answers again) to a request the token store must answer: a login or a refresh (refresh
  tokens live in the store), or, with opaque tokens, any request presenting one (SPEC section
  10, "Redis unreachable": fail closed, never let in);
- `kill`: a mutation or a login (`POST`s upstream) answered `UPSTREAM_UNAVAILABLE` (or 503)
  while it was in flight at a host's kill (within `KILL_GRACE` seconds after it): a `POST`
  that may have reached the dead instance is not sent again (SPEC section 6 retries idempotent
  requests only; a `POST` is retried only when it provably never left).

Anything else (a query's error, a 500, a timeout, a 503 to a JWT request) is an error.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from bench.soak_faults import Period
from bench.soak_traffic import MIX, Outcome

REDIS_GRACE = 3.0  # seconds after Redis answers again for the gateway to reconnect
KILL_GRACE = 2.0  # seconds after a kill in which an in-flight POST may still fail
POST_KINDS = frozenset({"place_order", "add_review", "login"})
P99_GOAL = 2.0
RSS_GOAL = 0.10


@dataclass(frozen=True)
class Window:
    """A fault's time span, seconds since the soak started: `kind` is "redis" or "kill"."""

    kind: str
    start: float
    end: float


@dataclass
class PeriodFigures:
    period: Period
    requests: int = 0
    fail_closed: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_mb: float | None = None  # the gateway's RSS at the period's end
    gateway_cpu_pct: float | None = None  # its CPU time over the period, % of one core
    load_busy_pct: float | None = None  # how busy the core of everything else was
    gateway_p50_ms: float | None = None  # from the gateway's access log: its own view
    gateway_p99_ms: float | None = None
    lag_p99_ms: float = 0.0  # the load generator's own delay in starting requests
    codes: dict[str, int] = field(default_factory=dict)  # class:code -> count


def verdict(outcome: Outcome, windows: Sequence[Window], token_format: str) -> str:
    """One of "ok", "fail-closed" (a documented case, module docstring) or "error"."""
    if outcome.ok:
        return "ok"
    answered = outcome.sent + outcome.latency
    for window in windows:
        if window.kind == "redis":
            overlaps = outcome.sent <= window.end + REDIS_GRACE and answered >= window.start
            needs_store = outcome.kind in ("login", "refresh") or (
                outcome.token and token_format == "opaque"
            )
            if overlaps and needs_store and outcome.status == 503:
                return "fail-closed"
        elif window.kind == "kill":
            in_flight = outcome.sent <= window.start + KILL_GRACE and answered >= window.start
            unavailable = outcome.code == "UPSTREAM_UNAVAILABLE" or outcome.status == 503
            if in_flight and outcome.kind in POST_KINDS and unavailable:
                return "fail-closed"
    return "error"


def served_times(lines: Iterable[str], wall_started: float) -> list[tuple[float, float]]:
    """(start, seconds) of every request in a gateway's JSON access log (SPEC section 10's
    `time` and `duration_ms`), start in seconds since the soak began (`wall_started`, epoch)."""
    found = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            entry = orjson.loads(line)
            end = datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
            seconds = float(entry["duration_ms"]) / 1000
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        found.append((end.timestamp() - seconds - wall_started, seconds))
    return found


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def figures(
    periods: Sequence[Period],
    outcomes: Sequence[Outcome],
    windows: Sequence[Window],
    token_format: str,
    rss_by_period: dict[int, float],
    cpu_by_period: dict[int, tuple[float, float]] | None = None,
    served: Sequence[tuple[float, float]] | None = None,
) -> list[PeriodFigures]:
    rows = []
    for period in periods:
        row = PeriodFigures(period, rss_mb=rss_by_period.get(period.index))
        if cpu_by_period and period.index in cpu_by_period:
            row.gateway_cpu_pct, row.load_busy_pct = cpu_by_period[period.index]
        if served is not None:
            own = sorted(d for start, d in served if period.start <= start < period.end)
            if own:
                row.gateway_p50_ms = percentile(own, 0.50) * 1000
                row.gateway_p99_ms = percentile(own, 0.99) * 1000
        inside = [o for o in outcomes if period.start <= o.sent < period.end]
        latencies = sorted(o.latency for o in inside if o.code != "NOT_SENT")
        row.requests = len(inside)
        row.p50_ms = percentile(latencies, 0.50) * 1000
        row.p99_ms = percentile(latencies, 0.99) * 1000
        row.lag_p99_ms = percentile(sorted(o.lag for o in inside), 0.99) * 1000
        for outcome in inside:
            kind = verdict(outcome, windows, token_format)
            if kind == "ok":
                continue
            if kind == "fail-closed":
                row.fail_closed += 1
            else:
                row.errors += 1
            key = f"{kind} {outcome.kind} {outcome.status} {outcome.code}"
            row.codes[key] = row.codes.get(key, 0) + 1
        rows.append(row)
    return rows


def goal_lines(rows: Sequence[PeriodFigures], rss_start: float, rss_end: float) -> list[str]:
    """The three goal lines, each PASS or FAIL."""
    errors = sum(r.errors for r in rows)
    fail_closed = sum(r.fail_closed for r in rows)
    lines = [
        f"- {'PASS' if errors == 0 else 'FAIL'}: no client-visible errors outside the "
        f"documented fail-closed cases: {errors} (documented fail-closed: {fail_closed})"
    ]
    quiet = rows[0].p99_ms if rows else 0.0
    if len(rows) < 2 or not quiet:
        lines.append("- not measured: p99 within 2 x the quiet period's (needs two periods)")
    else:
        worst = max(rows[1:], key=lambda r: r.p99_ms)
        ratio = worst.p99_ms / quiet
        over = [str(r.period.index + 1) for r in rows[1:] if r.p99_ms > P99_GOAL * quiet]
        where = f"; over it in period {', '.join(over)}" if over else ""
        lines.append(
            f"- {'PASS' if ratio <= P99_GOAL else 'FAIL'}: p99 within {P99_GOAL:g} x the quiet "
            f"period's ({quiet:.1f} ms): worst {worst.p99_ms:.1f} ms in period "
            f"{worst.period.index + 1} ({worst.period.fault}), {ratio:.2f} x{where}"
        )
    growth = (rss_end - rss_start) / rss_start if rss_start else 0.0
    lines.append(
        f"- {'PASS' if rss_start and growth < RSS_GOAL else 'FAIL'}: gateway RSS growth under "
        f"{RSS_GOAL:.0%}: {rss_start:.1f} MB at the start, {rss_end:.1f} MB at the end "
        f"({growth:+.1%})"
    )
    return lines


def passed(lines: Sequence[str]) -> bool:
    return all(line.startswith("- PASS") for line in lines)


def period_table(rows: Sequence[PeriodFigures], every_s: float) -> str:
    unit = "minute" if every_s == 60 else f"period ({every_s:g} s)"
    out = [
        f"| {unit} | fault | requests | fail-closed (documented) | errors | p50 ms | p99 ms "
        "| gateway's own p50 / p99 ms | load generator lag p99 ms | gateway RSS MB "
        "| gateway CPU % | load core busy % |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        own = f"{_num(r.gateway_p50_ms)} / {_num(r.gateway_p99_ms)}"
        out.append(
            f"| {r.period.index + 1} | {r.period.fault or 'none (quiet)'} | {r.requests} "
            f"| {r.fail_closed} | {r.errors} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {own} "
            f"| {r.lag_p99_ms:.1f} "
            f"| {_num(r.rss_mb)} | {_num(r.gateway_cpu_pct, 0)} | {_num(r.load_busy_pct, 0)} |"
        )
    return "\n".join(out)


def _num(value: float | None, digits: int = 1) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def kind_table(outcomes: Sequence[Outcome], windows: Sequence[Window], token_format: str) -> str:
    out = [
        "| kind | requests | fail-closed | errors | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in MIX:
        mine = [o for o in outcomes if o.kind == kind]
        verdicts = [verdict(o, windows, token_format) for o in mine]
        latencies = sorted(o.latency for o in mine if o.code != "NOT_SENT")
        out.append(
            f"| {kind} | {len(mine)} | {verdicts.count('fail-closed')} "
            f"| {verdicts.count('error')} | {percentile(latencies, 0.5) * 1000:.1f} "
            f"| {percentile(latencies, 0.99) * 1000:.1f} |"
        )
    return "\n".join(out)


def error_lines(
    rows: Sequence[PeriodFigures], outcomes: Sequence[Outcome], windows: Sequence[Window], fmt: str
) -> list[str]:
    """Every (verdict, kind, status, code) that occurred, with its count and a first example."""
    totals: dict[str, int] = {}
    for r in rows:
        for key, count in r.codes.items():
            totals[key] = totals.get(key, 0) + count
    examples: dict[str, str] = {}
    for o in outcomes:
        if not o.ok:
            key = f"{verdict(o, windows, fmt)} {o.kind} {o.status} {o.code}"
            examples.setdefault(key, f"at {o.sent:.1f} s: {o.detail}")
    return [
        f"- {count} x `{key}` (first {examples.get(key, '')!r})"
        for key, count in sorted(totals.items(), key=lambda item: -item[1])
    ]
