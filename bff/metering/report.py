"""Read usage back: per client and operation, per field, and the fields nobody used.

`usage_report` adds up the minute buckets of a window (at most `MAX_WINDOW`), optionally for
one client or one operation; `render_table` prints it for a terminal (`bff usage`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bff.metering.store import BUCKET, MAX_WINDOW, UsageStore, split_name


@dataclass
class Row:
    calls: int = 0
    errors: int = 0
    ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        avg = round(self.ms / self.calls, 3) if self.calls else 0.0
        return {"calls": self.calls, "errors": self.errors, "avg_ms": avg}


@dataclass
class UsageReport:
    since: float
    until: float
    client: str | None
    operation: str | None
    operations: dict[tuple[str, str], Row] = field(default_factory=dict)
    fields: dict[str, Row] = field(default_factory=dict)
    unused_fields: list[str] = field(default_factory=list)

    def clients(self) -> dict[str, Row]:
        rows: dict[str, Row] = defaultdict(Row)
        for (client, _), row in self.operations.items():
            total = rows[client]
            total.calls, total.errors, total.ms = (
                total.calls + row.calls,
                total.errors + row.errors,
                total.ms + row.ms,
            )
        return dict(rows)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "client": self.client,
            "operation": self.operation,
            "clients": [{"client": c, **r.as_dict()} for c, r in sorted(self.clients().items())],
            "operations": [
                {"client": c, "operation": o, **r.as_dict()}
                for (c, o), r in sorted(self.operations.items())
            ],
            "fields": [{"field": f, **r.as_dict()} for f, r in sorted(self.fields.items())],
            "unused_fields": self.unused_fields,
        }


async def usage_report(
    store: UsageStore,
    schema_fields: Iterable[str],
    *,
    window: float = 3600,
    client: str | None = None,
    operation: str | None = None,
    now: float | None = None,
) -> UsageReport:
    until = time.time() if now is None else now
    window = min(max(window, BUCKET), MAX_WINDOW)
    since = until - window
    counters = await store.read(int(since // BUCKET), int(until // BUCKET))
    report = UsageReport(since, until, client, operation)
    for name, value in counters.items():
        kind, who, op, coordinate, measure = split_name(name)
        if (client is not None and who != client) or (operation is not None and op != operation):
            continue
        if kind == "op":
            row = report.operations.setdefault((who, op), Row())
        else:
            row = report.fields.setdefault(coordinate, Row())
        if measure == "calls":
            row.calls += int(value)
        elif measure == "errors":
            row.errors += int(value)
        else:
            row.ms += value
    report.unused_fields = sorted(set(schema_fields) - set(report.fields))
    return report


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out


def render_table(data: dict[str, Any]) -> str:
    """A report (`UsageReport.as_json()`, or `GET /admin/usage`'s body) as terminal tables."""
    span = time.strftime("%Y-%m-%d %H:%M", time.gmtime(data["since"]))
    end = time.strftime("%Y-%m-%d %H:%M", time.gmtime(data["until"]))
    lines = [f"usage from {span} to {end} UTC", ""]
    lines += _table(
        ["client", "operation", "calls", "errors", "avg ms"],
        [
            [r["client"], r["operation"], str(r["calls"]), str(r["errors"]), f"{r['avg_ms']:.1f}"]
            for r in data["operations"]
        ],
    )
    lines.append("")
    lines += _table(
        ["field", "calls", "errors", "avg ms"],
        [
            [r["field"], str(r["calls"]), str(r["errors"]), f"{r['avg_ms']:.1f}"]
            for r in data["fields"]
        ],
    )
    lines.append("")
    unused = data["unused_fields"]
    lines.append(f"fields nobody used ({len(unused)}):")
    lines += [f"  {name}" for name in unused] or ["  (none)"]
    return "\n".join(lines)
