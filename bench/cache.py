"""Shared upstream calls and the response cache, measured on their own.

1. Dedupe: rounds of 32 concurrent identical product lookups (one GraphQL request each, from
   a Python client), against a gateway with `dedupe` on and one with it off; the catalog's own
   request counter gives upstream calls per client request. Goal (issue 22): <= 0.2 with
   dedupe on. The services add `--latency` (default 50 ms) so that the lookups overlap.
2. Cache: the Dashboard driven by wrk at concurrency 32 against a gateway with `cache.enabled`
   and two without (dedupe on, and off: every request makes its own calls), over services
   that answer `Cache-Control: max-age=600` with an ETag and no latency (the uncached gateway
   at its fastest). After a warm-up the cached gateway's
   upstream calls are counted during its run: goal 0; and its throughput >= 2x the uncached.

Run: `python -m bench.cache [--duration 5] [--save]` (`--save` writes the table under
bench/results/). Not part of `python -m bench.run`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from bench.load import LoadResult, run_wrk, write_script
from bench.procs import Child, Children, Pinning, cpu_seconds, detect_pinning, process_tree
from bench.stack import SERVICES, gateway_config, serve_config, service_urls_of, sign_token
from bench.workloads import DASHBOARD

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLIENTS = 32
ROUNDS = 20
CALLS_GOAL = 0.2
SPEEDUP_GOAL = 2.0
PRODUCT = '{ product(id: "7") { id name price } }'


def start_services(children: Children, pinning: Pinning, name: str, *flags: str) -> dict[str, str]:
    argv = [
        *pinning.prefix(pinning.load_core),
        sys.executable,
        "-m",
        "services",
        *SERVICES,
        "--port-base",
        "0",
        "--host",
        "127.0.0.1",
        *flags,
    ]
    child: Child = children.start(name, argv)
    return service_urls_of(child)


def gateway(
    children: Children,
    pinning: Pinning,
    tmp: Path,
    name: str,
    urls: dict[str, str],
    upstream_keys: dict[str, Any] | None = None,
    **extra: Any,
) -> tuple[str, Path, int]:
    """`bff serve` over `urls`, `upstream_keys` set on every upstream; its URL, config, pid."""
    config = {**gateway_config(urls, secrets.token_hex(32)), **extra}
    for upstream in config["upstreams"].values():
        upstream.update(upstream_keys or {})
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    server = serve_config(children, pinning, path, name=name)
    return server.url, path, server.child.pid


def upstream_calls(http: httpx.Client, urls: dict[str, str], reset: bool = False) -> int:
    total = 0
    for url in urls.values():
        if reset:
            http.post(f"{url}/_stats/reset").raise_for_status()
        else:
            total += http.get(f"{url}/_stats").json()["requests"]
    return total


async def lookup_rounds(url: str) -> int:
    """`ROUNDS` rounds of `CLIENTS` identical lookups sent at once; the requests answered.

    Each client is a kept-alive connection of its own and a round writes all their requests in
    one loop turn, so they reach the gateway within a millisecond or so. (An httpx client's
    `gather` of 32 posts spread them over 70-165 ms on the shared machine, longer than the
    services' 50 ms, so the last arrivals found the first call finished and made their own:
    the bench, not the gateway, decided how much was shared.)"""
    host, _, port = url.removeprefix("http://").partition(":")
    body = orjson.dumps({"query": PRODUCT})
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(CLIENTS)]
    answered = 0
    try:
        for _ in range(ROUNDS):
            for _, writer in connections:
                writer.write(request)
            replies = await asyncio.gather(*(_reply(reader) for reader, _ in connections))
            answered += sum(
                1 for status, data in replies if status == 200 and b'"errors"' not in data
            )
    finally:
        for _, writer in connections:
            writer.close()
    return answered


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a `Content-Length` (what the gateway sends to a POST)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {n.lower(): v.strip() for n, _, v in (x.partition(":") for x in lines[1:]) if n}
    data = await reader.readexactly(int(fields.get("content-length", "0")))
    return int(lines[0].split(" ")[1]), data


def dedupe_part(children: Children, pinning: Pinning, tmp: Path, latency: str) -> list[str]:
    urls = start_services(children, pinning, "services-dedupe", "--latency", latency)
    lines = [
        "| dedupe | client requests | catalog calls | calls per request |",
        "|---|---:|---:|---:|",
    ]
    per_request: dict[bool, float] = {}
    with httpx.Client(timeout=10, trust_env=False) as http:
        for dedupe in (False, True):
            url, _, _ = gateway(
                children,
                pinning,
                tmp,
                f"gateway-dedupe-{dedupe}",
                urls,
                upstream_keys={"dedupe": dedupe},
            )
            asyncio.run(lookup_rounds(url))  # warm-up: connections open, parse cache filled
            upstream_calls(http, {"catalog": urls["catalog"]}, reset=True)
            answered = asyncio.run(lookup_rounds(url))
            calls = upstream_calls(http, {"catalog": urls["catalog"]})
            per_request[dedupe] = calls / max(1, answered)
            state = "on" if dedupe else "off"
            lines.append(f"| {state} | {answered} | {calls} | {per_request[dedupe]:.3f} |")
    ok = per_request[True] <= CALLS_GOAL
    lines.append("")
    lines.append(
        f"{'PASS' if ok else 'FAIL'} upstream calls per client request, {CLIENTS} concurrent "
        f"identical lookups, dedupe on: {per_request[True]:.3f} (goal <= {CALLS_GOAL})"
    )
    return lines


def cache_part(children: Children, pinning: Pinning, tmp: Path, duration: float) -> list[str]:
    urls = start_services(
        children, pinning, "services-cache", "--cache-control", "max-age=600", "--etag"
    )
    results: dict[str, tuple[LoadResult, int, float]] = {}
    variants = {
        "off, dedupe off": ({"dedupe": False}, False),
        "off": ({}, False),
        "on (warm)": ({}, True),
    }
    with httpx.Client(timeout=10, trust_env=False) as http:
        for label, (keys, cached) in variants.items():
            name = f"gateway-cache-{len(results)}"
            url, path, pid = gateway(
                children, pinning, tmp, name, urls, keys, cache={"enabled": cached}
            )
            token = sign_token(path)
            body = orjson.dumps({"query": DASHBOARD.format(first=20), "operationName": "Dashboard"})
            script = write_script(
                tmp / f"{name}.lua",
                body,
                {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            )
            run_wrk(f"{url}/graphql", script, concurrency=CLIENTS, duration=1, prefix=[])  # warm
            upstream_calls(http, urls, reset=True)
            before = cpu_seconds(process_tree(pid))
            load = run_wrk(
                f"{url}/graphql",
                script,
                concurrency=CLIENTS,
                duration=duration,
                prefix=pinning.prefix(pinning.load_core),
            )
            if load.error_count or not load.requests:
                raise RuntimeError(f"cache {label}: errors {load.errors}")
            spent = cpu_seconds(process_tree(pid)) - before
            results[label] = (load, upstream_calls(http, urls), spent / load.requests * 1e6)
    lines = [
        "| cache | req/s | p50 ms | p99 ms | gateway CPU µs/req | upstream calls | calls/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, (load, calls, cpu_us) in results.items():
        lines.append(
            f"| {label} | {load.rps:.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} "
            f"| {cpu_us:.0f} | {calls} | {calls / load.requests:.3f} |"
        )
    warm, warm_calls, warm_cpu = results["on (warm)"]
    speedup = warm.rps / results["off, dedupe off"][0].rps
    over_shared = warm.rps / results["off"][0].rps
    cpu_speedup = results["off, dedupe off"][2] / warm_cpu
    lines.append("")
    lines.append(
        f"{'PASS' if warm_calls == 0 else 'FAIL'} upstream calls of the warm cached Dashboard: "
        f"{warm_calls} (goal 0)"
    )
    lines.append(
        f"{'PASS' if speedup >= SPEEDUP_GOAL else 'FAIL'} Dashboard throughput, cache warm / "
        f"uncached (every request its own calls): {speedup:.2f}x (goal >= {SPEEDUP_GOAL:g}x)"
    )
    lines.append(
        f"(cache warm / cache off with dedupe on, where these identical concurrent Dashboards "
        f"share most calls: {over_shared:.2f}x; gateway CPU per request, uncached / warm: "
        f"{cpu_speedup:.2f}x)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--latency", default="50ms", help="service latency of the dedupe part")
    parser.add_argument("--save", action="store_true", help="write the table under bench/results")
    args = parser.parse_args(argv)
    pinning = detect_pinning()
    with tempfile.TemporaryDirectory() as tmp, Children(Path(tmp), ROOT) as children:
        lines = [f"# Shared calls and the response cache ({pinning.reason})", ""]
        lines += dedupe_part(children, pinning, Path(tmp), args.latency)
        lines.append("")
        lines += cache_part(children, pinning, Path(tmp), args.duration)
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.save:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        (RESULTS / f"cache-{stamp}.md").write_text(report)
    return 0 if all(not line.startswith("FAIL") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
