"""The soak benchmark: its fault schedule, which errors count as documented fail-closed cases,
its goal lines, its slowing proxy, and one short run end to end (a few seconds, every fault)."""

from __future__ import annotations

import datetime
import random
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.soak_faults import FAULTS, SlowProxies, schedule
from bench.soak_report import (
    KILL_GRACE,
    REDIS_GRACE,
    PeriodFigures,
    Window,
    goal_lines,
    passed,
    percentile,
    served_times,
    verdict,
)
from bench.soak_traffic import Outcome, kinds, sessions

ROOT = Path(__file__).resolve().parent.parent

REDIS_DOWN = [Window("redis", 10.0, 20.0)]
KILLED = [Window("kill", 10.0, 10.0)]


def outcome(kind: str, sent: float, status: int, code: str, latency: float = 0.01) -> Outcome:
    token = kind in ("dashboard", "place_order", "add_review", "pass_orders")
    return Outcome(kind, sent, latency, status, code, token, "")


# --- schedule ------------------------------------------------------------------------------


def test_the_first_period_is_quiet_then_the_faults_rotate() -> None:
    periods = schedule(600, 60)
    assert len(periods) == 10
    assert periods[0].fault is None
    assert [p.fault for p in periods[1:]] == [*FAULTS, *FAULTS, *FAULTS]
    for p in periods:
        assert p.start < p.fault_start < p.fault_end < p.end  # the recovery is in the period
    assert periods[-1].end == 600


def test_a_short_soak_has_periods_of_the_asked_length() -> None:
    periods = schedule(15, 3)
    assert [(p.start, p.end) for p in periods] == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15)]


# --- which errors are documented ------------------------------------------------------------


def test_a_503_to_an_opaque_token_while_redis_is_away_is_fail_closed() -> None:
    answer = outcome("dashboard", 12.0, 503, "UPSTREAM_UNAVAILABLE")
    assert verdict(answer, REDIS_DOWN, "opaque") == "fail-closed"
    late = outcome("dashboard", 20.0 + REDIS_GRACE + 1, 503, "UPSTREAM_UNAVAILABLE")
    assert verdict(late, REDIS_DOWN, "opaque") == "error"  # Redis has been back for a while


def test_a_jwt_keeps_working_while_redis_is_away_so_its_503_is_an_error() -> None:
    answer = outcome("dashboard", 12.0, 503, "UPSTREAM_UNAVAILABLE")
    assert verdict(answer, REDIS_DOWN, "jwt") == "error"
    refresh = outcome("refresh", 12.0, 503, "temporarily_unavailable")
    assert verdict(refresh, REDIS_DOWN, "jwt") == "fail-closed"  # refresh tokens live in Redis


def test_a_request_without_a_token_never_fails_closed() -> None:
    product = outcome("product", 12.0, 503, "UPSTREAM_UNAVAILABLE")
    assert verdict(product, REDIS_DOWN, "opaque") == "error"


def test_a_mutation_in_flight_at_a_kill_is_documented_but_a_query_is_not() -> None:
    in_flight = outcome("place_order", 9.9, 200, "UPSTREAM_UNAVAILABLE", latency=0.2)
    assert verdict(in_flight, KILLED, "opaque") == "fail-closed"
    query = outcome("dashboard", 9.9, 200, "UPSTREAM_UNAVAILABLE", latency=0.2)
    assert verdict(query, KILLED, "opaque") == "error"  # GETs are retried on another instance
    later = outcome("place_order", 10.0 + KILL_GRACE + 1, 200, "UPSTREAM_UNAVAILABLE")
    assert verdict(later, KILLED, "opaque") == "error"
    before = outcome("add_review", 9.0, 200, "UPSTREAM_UNAVAILABLE", latency=0.1)
    assert verdict(before, KILLED, "opaque") == "error"  # answered before the kill


def test_a_500_is_an_error_whatever_the_fault() -> None:
    crash = outcome("place_order", 12.0, 500, "INTERNAL_SERVER_ERROR")
    assert verdict(crash, [*REDIS_DOWN, *KILLED], "opaque") == "error"
    assert verdict(outcome("login", 12.0, 200, ""), REDIS_DOWN, "opaque") == "ok"


# --- figures and goals ---------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7
    assert percentile([], 0.99) == 0


def test_the_gateways_own_latency_comes_from_its_access_log() -> None:
    lines = [
        "bff: serving on http://127.0.0.1:8000/graphql",
        '{"time":"2026-01-01T00:00:10.500Z","method":"POST","status":200,"duration_ms":500.0}',
        '{"time":"2026-01-01T00:00:12.000Z","status":503,"duration_ms":2}',
        '{"time":"2026-01-01T00:00:13.000Z","message":"no duration: not an access line"}',
        "{not json",
    ]
    began = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()
    served = served_times(lines, began)
    assert served == [(pytest.approx(10.0), 0.5), (pytest.approx(11.998), 0.002)]


def rows(*p99s: float, errors: int = 0) -> list[PeriodFigures]:
    periods = schedule(60 * len(p99s), 60)
    return [
        PeriodFigures(period, requests=100, errors=errors if period.index else 0, p99_ms=p99)
        for period, p99 in zip(periods, p99s, strict=True)
    ]


def test_goals_pass_on_a_steady_soak() -> None:
    lines = goal_lines(rows(20, 30, 39.9, 25), rss_start=100, rss_end=105)
    assert passed(lines), lines
    assert len(lines) == 3


def test_goals_fail_on_errors_latency_or_growth() -> None:
    errors = goal_lines(rows(20, 30, errors=1), 100, 100)
    assert errors[0].startswith("- FAIL") and not passed(errors)
    slow = goal_lines(rows(20, 41, 30), 100, 100)
    assert slow[1].startswith("- FAIL") and "period 2" in slow[1]
    grown = goal_lines(rows(20, 30), 100, 111)
    assert grown[2].startswith("- FAIL") and "+11.0%" in grown[2]


# --- traffic -------------------------------------------------------------------------------


def test_sessions_mix_admins_and_customers() -> None:
    pool = sessions(4)
    assert [s.username for s in pool] == ["user1", "user2", "user1", "user3"]
    assert [s.admin for s in pool] == [True, False, True, False]
    assert pool[3].password == "password3"


def test_the_mix_sends_every_kind() -> None:
    drawn = kinds(random.Random(1), 2000)
    assert set(drawn) == {
        "dashboard",
        "product",
        "place_order",
        "add_review",
        "pass_catalog",
        "pass_orders",
        "login",
        "refresh",
    }


# --- the slowing proxy ---------------------------------------------------------------------


def test_the_proxy_forwards_both_ways_and_can_be_slowed_and_restored() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def echo() -> None:
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data.upper())

        threading.Thread(target=echo, daemon=True).start()
        proxies = SlowProxies({"catalog": listener.getsockname()[1]})
        proxies.start()
        try:
            port = int(proxies.url("catalog").rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"ping")
                assert sock.recv(16) == b"PING"
                proxies.slow("catalog", 0.05)
                assert proxies.delays["catalog"] == 0.05
                sock.sendall(b"slow")
                assert sock.recv(16) == b"SLOW"  # slowed, still answered
                proxies.slow("catalog", 0.0)
                sock.sendall(b"back")
                assert sock.recv(16) == b"BACK"
        finally:
            proxies.stop()


# --- end to end ----------------------------------------------------------------------------


def test_a_short_soak_runs_every_fault_and_writes_its_report(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "bench.soak",
        "--minutes",
        "0.25",
        "--fault-every",
        "3",
        "--rate",
        "20",
        "--warmup",
        "1",
        "--results-dir",
        str(tmp_path),
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a goal failed, reported
    [report] = tmp_path.glob("soak-*.md")
    assert re.fullmatch(r"soak-\d{8}T\d{6}Z-\w+\.md", report.name)
    text = report.read_text()
    assert text.strip() in done.stdout  # printed too
    goals = [line for line in text.splitlines() if re.match(r"- (PASS|FAIL): ", line)]
    assert len(goals) == 3, text
    table = [line for line in text.splitlines() if re.match(r"\| [1-5] \| ", line)]
    faults = [line.split("|")[2].strip() for line in table]
    assert faults == ["none (quiet)", "kill", "redis", "slow", "kill"], text
    for line in table:
        assert int(line.split("|")[3]) == 60  # 20 requests/s for 3 s, each recorded
    for event in ("kill host 0", "host 0 ready", "stop Redis", "Redis answers", "slow catalog"):
        assert event in text, text
    assert "RSS" in text and "MB at the start" in text
    for line in table:  # the gateway's own p50 / p99, from its access log, in every period
        assert re.fullmatch(r"[0-9.]+ / [0-9.]+", line.split("|")[8].strip()), line
        assert float(line.split("|")[9]) >= 0  # the load generator's lag
