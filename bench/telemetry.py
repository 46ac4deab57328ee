"""The Dashboard with tracing off, on at sample ratio 1.0, and on at 0.01, in one run.

    .venv/bin/python -m bench.telemetry                 # 5 rounds of 10 s per mode, c=32
    .venv/bin/python -m bench.telemetry --duration 3 --rounds 1    # a smoke run

Each mode is a fresh `bff serve` (pinned like the main bench) over the same sample services;
traces go by OTLP/HTTP to a receiver in this runner that reads and drops them (the cost of
encoding and sending is the gateway's, as with a real collector). Metrics and the access log
are on in every mode. CPU per Dashboard is the gateway's CPU time during a timed run divided
by the requests wrk completed; the modes are measured in interleaved rounds (`bench.rounds`),
and a mode's ratio to off is the median of its rounds' ratios. Goals (issue 10): ratio 1.0
at most 1.25 x off, ratio 0.01 at most 1.05 x off.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from bench.load import run_wrk, write_script
from bench.procs import Children, cpu_seconds, detect_pinning, process_tree
from bench.rounds import order
from bench.stack import (
    Stack,
    gateway_config,
    service_urls_of,
    sign_token,
    start_gateway,
    start_services,
)
from bench.workloads import dashboard

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"ratio 1.0": 1.25, "ratio 0.01": 1.05}


class Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def modes(receiver: str) -> dict[str, dict[str, Any]]:
    return {
        "off": {"exporter": "none"},
        "ratio 1.0": {"exporter": "otlp_http", "endpoint": receiver, "sample_ratio": 1.0},
        "ratio 0.01": {"exporter": "otlp_http", "endpoint": receiver, "sample_ratio": 0.01},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per mode (10)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the modes (5)")
    args = parser.parse_args(argv)
    workload = dashboard(20)
    pinning = detect_pinning()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{sink.server_address[1]}"
    rounds: dict[str, list[tuple[int, float, float]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bff-bench-telemetry-") as tmp,
        Children(Path(tmp), ROOT) as children,
    ):
        work = Path(tmp)
        services = start_services(children, pinning, 0.0)
        urls = service_urls_of(services)
        secret = secrets.token_urlsafe(32)
        prefix = pinning.prefix(pinning.load_core)
        runs = {}
        for name, telemetry in modes(receiver).items():
            path = work / f"bff-{name.replace(' ', '-')}.yaml"
            path.write_text(
                yaml.safe_dump({**gateway_config(urls, secret), "telemetry": telemetry})
            )
            stack = Stack(0.0, services, urls, sign_token(path), path)
            server = start_gateway(children, pinning, stack)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {stack.token}"}
            script = write_script(work / f"{name}.lua", workload.body, headers)
            url = f"{server.url}/graphql"
            run_wrk(url, script, concurrency=args.concurrency, duration=1, prefix=prefix)
            runs[name] = (server, url, script)
        # Rounds interleave the modes, alternating in direction, and each goal takes the
        # median of its rounds' ratios: load from other programs drifts over a run.
        for number in range(args.rounds):
            for name in order(list(runs), number):
                server, url, script = runs[name]
                pids = process_tree(server.child.pid)
                before = cpu_seconds(pids)
                result = run_wrk(
                    url, script, concurrency=args.concurrency, duration=args.duration, prefix=prefix
                )
                cpu_s = cpu_seconds(pids) - before
                if result.error_count:
                    print(f"{name}: {result.error_count} errors", file=sys.stderr)
                rounds.setdefault(name, []).append((result.requests, result.duration_s, cpu_s))
    sink.shutdown()

    def per_dashboard(requests: int, cpu_s: float) -> float:
        return cpu_s / max(1, requests) * 1e6

    print(
        f"Dashboard, concurrency {args.concurrency}, {args.rounds} interleaved rounds of "
        f"{args.duration} s per mode\n"
    )
    print("| telemetry | req/s | CPU µs per Dashboard | x off (median of rounds) | rounds |")
    print("|---|---:|---:|---:|---|")
    ratios: dict[str, float] = {}
    for name, measured in rounds.items():
        requests = sum(m[0] for m in measured)
        seconds = sum(m[1] for m in measured)
        cpu_us = per_dashboard(requests, sum(m[2] for m in measured))
        each = [
            per_dashboard(m[0], m[2]) / per_dashboard(o[0], o[2])
            for m, o in zip(measured, rounds["off"], strict=True)
        ]
        ratios[name] = statistics.median(each)
        listed = ", ".join(f"{r:.2f}" for r in each)
        rate = requests / seconds
        print(f"| {name} | {rate:.0f} | {cpu_us:.0f} | {ratios[name]:.2f} | {listed} |")
    print()
    for name, goal in GOALS.items():
        verdict = "PASS" if ratios[name] <= goal else "FAIL"
        print(
            f"{verdict}: CPU per Dashboard at {name} <= {goal} x off "
            f"(measured {ratios[name]:.2f} x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
