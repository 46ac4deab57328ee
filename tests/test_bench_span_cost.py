"""`bench.span_cost` measures what it says: a Dashboard's twelve spans, on both sides."""

from __future__ import annotations

from collections import Counter

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from bench import span_cost


def test_both_sides_export_a_dashboards_span_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    exported: dict[str, list[ReadableSpan]] = {"SDK": [], "bff": []}
    for name, side in (("SDK", span_cost.sdk_side), ("bff", span_cost.bff_side)):
        start, flush, sink = side()

        def keep(spans: object, into: list[ReadableSpan] = exported[name]) -> SpanExportResult:
            into.extend(spans)  # type: ignore[call-overload]
            return SpanExportResult.SUCCESS

        monkeypatch.setattr(sink, "export", keep)
        span_cost.dashboard(start)
        flush()
    for spans in exported.values():
        names = Counter(span.name for span in spans)
        assert names == Counter(
            {"POST /graphql": 1, "query Dashboard": 1, "GET": 5}
            | {f"dataloader {upstream}": 1 for upstream in span_cost.UPSTREAMS}
        )
        by_id = {span.context.span_id: span for span in spans}
        parents = {
            span.name: by_id[span.parent.span_id].name if span.parent else None for span in spans
        }
        assert parents["POST /graphql"] is None
        assert parents["query Dashboard"] == "POST /graphql"
        assert parents["GET"] is not None and parents["GET"].startswith("dataloader ")
        assert parents["dataloader users"] == "query Dashboard"


def test_the_runner_prints_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert span_cost.main(["--trees", "300", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| SDK |" in out and "| bff |" in out
