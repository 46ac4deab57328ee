"""What `@defer` buys a page with one slow upstream: time to the first part against the answer.

    .venv/bin/python -m bench.defer                  # 200 requests of each, interleaved
    .venv/bin/python -m bench.defer --requests 40    # a smoke run

The sample services run in two processes: reviews with 50 ms of latency (`--latency`), the
others with none. One gateway (`bff serve`, pinned to the target core like the main benchmark)
answers the Dashboard (20 orders) two ways, one request at a time, alternating: in one piece
(`Accept: application/json`), and with `averageRating`, the reviews part, behind `@defer`,
read as `multipart/mixed` parts the way Apollo Client asks for them. A part counts as arrived
when its JSON is whole. Goal (issue 22): the deferred Dashboard's first part at p50 within
0.5 x the p50 of the whole answer without `@defer`. Short: it is not part of `python -m
bench.run`.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import yaml

from bench.procs import Child, Children, detect_pinning
from bench.stack import START_TIMEOUT, gateway_config, serve_config, sign_token
from bench.workloads import DASHBOARD
from services import SERVICE_NAMES

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.5
SLOW = "reviews"
FULL = DASHBOARD.format(first=20)
DEFERRED = FULL.replace(
    "stock averageRating", 'stock ... @defer(label: "rating") { averageRating }'
)
MULTIPART = "multipart/mixed;deferSpec=20220824, application/json"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def start_services(
    children: Children, argv_prefix: list[str], names: Sequence[str], ms: float
) -> Child:
    argv = [*argv_prefix, sys.executable, "-m", "services", *names]
    argv += ["--port-base", "0", "--host", "127.0.0.1", "--latency", f"{ms:g}ms"]
    return children.start(f"services-{'-'.join(names)}-{ms:g}ms", argv)


def urls_of(child: Child, names: Sequence[str]) -> dict[str, str]:
    lines = child.wait_for_line(lambda line: line.strip() == "ready", START_TIMEOUT)
    urls = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] in names and parts[1].startswith("http://127.0.0.1:"):
            urls[parts[0]] = parts[1]
    if set(urls) != set(names):
        raise child.failed(f"printed URLs for {sorted(urls)}, not {sorted(names)}")
    return urls


def whole(http: httpx.Client, url: str, headers: dict[str, str]) -> float:
    """Seconds until the whole one-piece answer is in."""
    started = time.perf_counter()
    response = http.post(url, json={"query": FULL}, headers=headers)
    took = time.perf_counter() - started
    body = response.json()
    if response.status_code != 200 or "errors" in body:
        raise RuntimeError(f"the Dashboard answered {response.status_code}: {response.text[:300]}")
    return took


def in_parts(http: httpx.Client, url: str, headers: dict[str, str]) -> tuple[float, float]:
    """Seconds until the first part's JSON is whole, and until the last part's."""
    started = time.perf_counter()
    first = last = 0.0
    buffer = b""
    send = {**headers, "Accept": MULTIPART}
    with http.stream("POST", url, json={"query": DEFERRED}, headers=send) as response:
        if not response.headers.get("content-type", "").startswith("multipart/mixed"):
            raise RuntimeError(f"not answered in parts: {response.headers}")
        for chunk in response.iter_raw():
            buffer += chunk
            if not first and _first_part_whole(buffer):
                first = time.perf_counter() - started
        last = time.perf_counter() - started
    if b'"hasNext":false' not in buffer or b'"errors"' in buffer:
        raise RuntimeError(f"the deferred Dashboard answered {buffer[-300:]!r}")
    return first, last


def _first_part_whole(buffer: bytes) -> bool:
    start = buffer.find(b"\r\n\r\n")
    if start < 0:
        return False
    end = buffer.find(b"\r\n---", start)
    try:
        orjson.loads(buffer[start + 4 : end if end >= 0 else len(buffer)])
    except orjson.JSONDecodeError:
        return False
    return True


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.defer", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="of each kind (200)")
    parser.add_argument("--latency", type=float, default=50.0, help="ms of reviews (50)")
    args = parser.parse_args(argv)
    pinning = detect_pinning()
    fast = [name for name in SERVICE_NAMES if name != SLOW]
    full: list[float] = []
    firsts: list[float] = []
    lasts: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bff-defer-bench-") as tmp,
        Children(Path(tmp), ROOT) as children,
    ):
        prefix = pinning.prefix(pinning.load_core)
        quick = start_services(children, prefix, fast, 0.0)
        slow = start_services(children, prefix, [SLOW], args.latency)
        urls = {**urls_of(quick, fast), **urls_of(slow, [SLOW])}
        config = Path(tmp) / "bff.yaml"
        config.write_text(yaml.safe_dump(gateway_config(urls, secrets.token_urlsafe(32))))
        server = serve_config(children, pinning, config)
        headers = {"Authorization": f"Bearer {sign_token(config)}", "Accept": "application/json"}
        url = f"{server.url}/graphql"
        with httpx.Client(timeout=10, trust_env=False) as http:
            for _ in range(10):  # warm: plans, pools, connections
                whole(http, url, headers)
                in_parts(http, url, headers)
            say(f"bench.defer: {args.requests} requests of each, reviews at {args.latency:g} ms")
            for _ in range(args.requests):
                full.append(whole(http, url, headers))
                first, last = in_parts(http, url, headers)
                firsts.append(first)
                lasts.append(last)
    ms = {name: [v * 1000 for v in values] for name, values in
          (("full", full), ("first", firsts), ("last", lasts))}  # fmt: skip
    p50_full, p50_first = statistics.median(ms["full"]), statistics.median(ms["first"])
    ratio = p50_first / p50_full if p50_full else 0.0
    verdict = "PASS" if ratio <= GOAL else "FAIL"
    print(
        f"Dashboard (20 orders), reviews at {args.latency:g} ms, the other services at 0 ms, "
        f"{args.requests} requests of each, one at a time; {pinning.reason}\n"
    )
    print("| answer | p50 ms | p90 ms | p99 ms |")
    print("|---|---|---|---|")
    for label, name in (
        ("whole, no @defer", "full"),
        ("@defer: first part", "first"),
        ("@defer: last part", "last"),
    ):
        values = ms[name]
        print(
            f"| {label} | {statistics.median(values):.2f} | {quantile(values, 0.9):.2f} "
            f"| {quantile(values, 0.99):.2f} |"
        )
    print(
        f"\n- {verdict}: time to the first part with @defer on the slow part: {ratio:.2f} x "
        f"the p50 of the whole answer without it (goal ≤ {GOAL:g})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
