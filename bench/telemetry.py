"""The Dashboard with tracing off, on at sample ratio 1.0, and on at 0.01, in one run.

    .venv/bin/python -m bench.telemetry                 # 3 rounds of 10 s per mode, c=32
    .venv/bin/python -m bench.telemetry --duration 3 --rounds 1    # a smoke run

Each mode is a fresh `bff serve` (pinned like the main bench) over the same sample services;
traces go by OTLP/HTTP to a receiver in this runner that reads and drops them (the cost of
encoding and sending is the gateway's, as with a real collector). Metrics and the access log
are on in every mode. CPU per Dashboard is the gateway's CPU time during the timed run divided
by the requests wrk completed, the best of the interleaved rounds. Goals (issue 10): ratio 1.0
at most 1.25 x off, ratio 0.01 at most 1.05 x off.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from bench.load import run_wrk, write_script
from bench.procs import Children, cpu_seconds, detect_pinning, process_tree
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
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the modes (3)")
    args = parser.parse_args(argv)
    workload = dashboard(20)
    pinning = detect_pinning()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{sink.server_address[1]}"
    rows: dict[str, tuple[float, float]] = {}
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
        # Rounds interleave the modes, and each mode keeps its best round: load from other
        # programs drifts over a run, and it only ever adds CPU.
        for _ in range(args.rounds):
            for name, (server, url, script) in runs.items():
                pids = process_tree(server.child.pid)
                before = cpu_seconds(pids)
                result = run_wrk(
                    url, script, concurrency=args.concurrency, duration=args.duration, prefix=prefix
                )
                cpu_us = (cpu_seconds(pids) - before) / max(1, result.requests) * 1e6
                if result.error_count:
                    print(f"{name}: {result.error_count} errors", file=sys.stderr)
                if name not in rows or cpu_us < rows[name][1]:
                    rows[name] = (result.rps, cpu_us)
    sink.shutdown()
    off = rows["off"][1]
    print(
        f"Dashboard, concurrency {args.concurrency}, best of {args.rounds} rounds of "
        f"{args.duration} s per mode\n"
    )
    print("| telemetry | req/s | CPU µs per Dashboard | x off |")
    print("|---|---:|---:|---:|")
    for name, (rps, cpu_us) in rows.items():
        print(f"| {name} | {rps:.0f} | {cpu_us:.0f} | {cpu_us / off:.2f} |")
    print()
    for name, goal in GOALS.items():
        ratio = rows[name][1] / off
        verdict = "PASS" if ratio <= goal else "FAIL"
        print(f"{verdict}: CPU per Dashboard at {name} <= {goal} x off (measured {ratio:.2f} x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
