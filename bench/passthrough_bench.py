"""REST passthrough next to the same call made directly to the service, in one run.

    GET /api/catalog/products/1 through the gateway   vs   GET /products/1 on the catalog

Both are driven by wrk (one thread) at concurrency 1 and 32; the gateway's CPU per request
is its process's user + system time over the requests wrk completed, and the added p50 is the
gateway's median latency less the direct one's, at concurrency 1. Goals (issue 11): at most
250 µs of gateway CPU per passthrough GET at c=32 (nginx spends about 75 µs on one core), at
most 0.5 ms added p50 at c=1. With two usable cores the gateway runs on one, the services and
wrk on the other.

Run: `python -m bench.passthrough_bench [--duration 5]`. Short: it is not part of
`python -m bench.run`.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

import yaml

from bench.load import LoadResult, run_wrk, write_script
from bench.procs import Children, cpu_seconds, detect_pinning, process_tree
from bench.stack import gateway_config, serve_config, service_urls_of, start_services

ROOT = Path(__file__).resolve().parent.parent
CPU_GOAL_US = 250.0
ADDED_P50_GOAL_MS = 0.5
ROUTE = {"name": "catalog", "upstream": "catalog", "methods": ["GET"], "auth": "public"}


def get_script(path: Path) -> Path:
    """The bench's wrk script, sending GETs (it is written for POSTs of a GraphQL body)."""
    write_script(path, b"", {})
    path.write_text(path.read_text().replace('wrk.method = "POST"', 'wrk.method = "GET"'))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    pinning = detect_pinning()
    with tempfile.TemporaryDirectory() as tmp, Children(Path(tmp), ROOT) as children:
        services = start_services(children, pinning, 0.0)
        urls = service_urls_of(services)
        config = {**gateway_config(urls, secrets.token_hex(32)), "routes": [ROUTE]}
        config_path = Path(tmp) / "bff.yaml"
        config_path.write_text(yaml.safe_dump(config))
        server = serve_config(children, pinning, config_path)
        gateway, gateway_url = server.child, server.url
        script = get_script(Path(tmp) / "get.lua")
        targets = {
            "direct": f"{urls['catalog']}/products/1",
            "passthrough": f"{gateway_url}/api/catalog/products/1",
        }
        results: dict[tuple[str, int], tuple[LoadResult, float]] = {}
        for concurrency in (1, 32):
            for name, url in targets.items():
                run_wrk(url, script, concurrency=concurrency, duration=1, prefix=[])  # warm up
                before = cpu_seconds(process_tree(gateway.pid))
                load = run_wrk(
                    url,
                    script,
                    concurrency=concurrency,
                    duration=args.duration,
                    prefix=pinning.prefix(pinning.load_core),
                )
                spent = cpu_seconds(process_tree(gateway.pid)) - before
                if load.error_count or not load.requests:
                    print(f"{name} c={concurrency}: errors {load.errors}", file=sys.stderr)
                    return 1
                results[(name, concurrency)] = (load, spent / load.requests * 1e6)
    print(f"GET one product; {pinning.reason}")
    print("| target | c | req/s | p50 ms | p99 ms | gateway CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|")
    for (name, concurrency), (load, cpu_us) in results.items():
        cpu = f"{cpu_us:.0f}" if name == "passthrough" else "-"
        print(
            f"| {name} | {concurrency} | {load.rps:.0f} | {load.p50_ms:.3f} "
            f"| {load.p99_ms:.3f} | {cpu} |"
        )
    cpu_us = results[("passthrough", 32)][1]
    added = results[("passthrough", 1)][0].p50_ms - results[("direct", 1)][0].p50_ms
    ok_cpu, ok_p50 = cpu_us <= CPU_GOAL_US, added <= ADDED_P50_GOAL_MS
    print(
        f"{'PASS' if ok_cpu else 'FAIL'} gateway CPU per passthrough GET at c=32: "
        f"{cpu_us:.0f} µs (goal <= {CPU_GOAL_US:.0f})"
    )
    print(
        f"{'PASS' if ok_p50 else 'FAIL'} added p50 at c=1: {added:.3f} ms "
        f"(goal <= {ADDED_P50_GOAL_MS})"
    )
    return 0 if ok_cpu and ok_p50 else 1


if __name__ == "__main__":
    sys.exit(main())
