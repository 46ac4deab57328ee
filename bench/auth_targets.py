"""The gateway under the Dashboard with the token kinds of SPEC section 5, beside the plain path.

`gateway` is the plain JWT path (memory token store: revocations are a local lookup) with no
Redis at all. Three more gateways run on the same config but for `auth` and `redis`, in the
same run and stack:

- `gateway-opaque`: an opaque access token whose claims live in Redis (`token_format: opaque`,
  `store: redis`), looked up through the gateway's one-second local cache;
- `gateway-jwt-redis`: a JWT with revocation checks against Redis (`store: redis`): the
  revocation list is read from Redis in the background, the request checks it in memory;
- `gateway-redis`: the plain JWT path again (`store: memory`), with the same `redis` section
  as the two above. It is the baseline of the token kinds' goal.

Why that baseline. A token store in Redis needs `redis.url`, and with `redis.url` configured
the gateway keeps rate limits, APQ documents and usage metering in Redis too (SPEC section 10:
where shared state lives). Measured against the Redis-less `gateway`, a token kind would be
charged for a Redis rate-limit call per request and Redis metering as well: costs that every
replicated deployment pays whatever its token kind, which are not the token path's and which
have their own measurement (`bench.limits_bench`). The issue's goal asks what the token path
costs, so its verdict divides each token kind by `gateway-redis`, where only the token path
differs. Both views are printed: each goal line also gives the token kind ÷ the Redis-less
`gateway` (what a deployment moving from one process without Redis to Redis-backed tokens
pays in all), and one line gives `gateway-redis` ÷ `gateway` (what shared state alone costs).

Each logs in through `POST /auth/token` (the admin of the sample auth service, who holds
`orders:read`), so the token it is measured with is one it issued itself. One client with one
token: the opaque token misses the gateway's one-second cache once a second, so these cells
measure the cached path; what a miss costs (many clients, each sending less than a request a
second) is `bench.auth_cost`'s `opaque-redis-uncached`. They are measured on
the Dashboard at c=32 only, where the goal is stated: each token kind at least `AUTH_GOAL`
times the baseline's served req/s, in interleaved rounds with the plain gateway (see
`bench/rounds.py`), the ratio taken round by round and its median reported. The three share
one Redis, each on a key prefix of its own: a redis-server the run starts on the load core
(`stack.start_redis`: in production Redis does not share the gateway's core either), or the
one at `REDIS_URL` when that is set or no redis-server is installed (unpinned, and possibly
busy with other work); without one they are left out, with a warning.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import orjson

from bench.cell import PINNED, Cell, round_ratios, rounds_note
from bench.procs import http_post

REDIS_URL_SET = "REDIS_URL" in os.environ  # else the run starts a redis-server of its own
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH_TARGETS: dict[str, dict[str, Any]] = {  # target -> its `auth` over the plain gateway's
    "gateway-opaque": {"token_format": "opaque", "store": "redis"},
    "gateway-jwt-redis": {"token_format": "jwt", "store": "redis"},
    "gateway-redis": {},  # the plain JWT path, with shared state in Redis: the baseline
}
TOKEN_KINDS = ("gateway-opaque", "gateway-jwt-redis")
BASELINE = "gateway-redis"
AUTH_WORKLOAD = "dashboard"
AUTH_CONCURRENCY = 32
AUTH_GOAL = 0.9
ACCESS_TTL = "12h"  # the token logged in with lasts the whole run


def is_auth_target(target: str) -> bool:
    return target in AUTH_TARGETS


def redis_answers(url: str = REDIS_URL) -> bool:
    """Whether a Redis answers PING at `url` (a plain socket: the runner needs no client)."""
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2
        ) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def auth_config(base: dict[str, Any], target: str, redis_url: str) -> dict[str, Any]:
    """The plain gateway's config with `target`'s auth, on a key prefix of its own."""
    auth = {**base["auth"], **AUTH_TARGETS[target], "access_ttl": ACCESS_TTL}
    redis = {"url": redis_url, "key_prefix": f"bffbench:{secrets.token_hex(6)}:"}
    return {**base, "auth": auth, "redis": redis}


def login(url: str) -> str:
    """An access token from the gateway at `url`, for the sample admin (scope orders:read)."""
    body = orjson.dumps({"username": "user1", "password": "password1"})
    status, answer = http_post(f"{url}/auth/token", body, {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"login at {url} answered {status}: {answer[:300]!r}")
    token: str = orjson.loads(answer)["access_token"]
    return token


def measured_with(target: str, workload: str, concurrencies: Sequence[int]) -> list[int]:
    """The concurrencies at which `target` measures `workload`."""
    if not is_auth_target(target):
        return list(concurrencies)
    if workload != AUTH_WORKLOAD:
        return []
    return [c for c in concurrencies if c == AUTH_CONCURRENCY]


def _served(cell: Cell) -> float:
    return cell.served_rps


def _cpu(cell: Cell) -> float:
    return cell.cpu_ms_per_request


def _versus(cell: Cell, base: Cell) -> tuple[float, list[float], float]:
    """Median served req/s ratio, its rounds, and median CPU per request ratio."""
    served = round_ratios(cell, base, _served)
    cpu = round_ratios(cell, base, _cpu)
    return statistics.median(served), served, statistics.median(cpu) if cpu else 0.0


def goal_lines(cells: Sequence[Cell]) -> list[str]:
    """One PASS/FAIL line per token kind and latency: served req/s ÷ the baseline's (the
    median of the interleaved rounds' ratios), with the Redis-less gateway's ratio beside it;
    and one line, with no goal, for what shared state in Redis costs the plain path."""
    found: dict[tuple[str, float], Cell] = {
        (c.target, c.latency_ms): c
        for c in cells
        if c.workload == AUTH_WORKLOAD and c.concurrency == AUTH_CONCURRENCY and c.phase == PINNED
    }
    latencies = sorted({latency for _, latency in found})
    lines = []
    for target in TOKEN_KINDS:
        label = f"Dashboard throughput under {target}, c={AUTH_CONCURRENCY}"
        if not any(t == target for t, _ in found):
            lines.append(f"- not measured: {label} (needs Redis and the gateway target)")
        for latency in latencies:
            cell = found.get((target, latency))
            if cell is None:
                continue
            base_name = BASELINE if (BASELINE, latency) in found else "gateway"
            base = found.get((base_name, latency))
            if base is None or not base.served_rps:
                lines.append(f"- not measured: {label}, {latency:g} ms (no baseline cell)")
                continue
            ratio, rounds, cpu = _versus(cell, base)
            line = (
                f"- {'PASS' if ratio >= AUTH_GOAL else 'FAIL'}: {label}, {latency:g} ms: "
                f"{target}/{base_name} = {ratio:.2f} (goal ≥ {AUTH_GOAL:.2f}"
                f"{rounds_note(rounds)}); CPU per request {cpu:.2f}x; {target} "
                f"{cell.served_rps:,.0f} req/s, {base_name} {base.served_rps:,.0f} req/s"
            )
            plain = found.get(("gateway", latency))
            if base_name != "gateway" and plain is not None and plain.served_rps:
                vs_plain, _, cpu_plain = _versus(cell, plain)
                line += (
                    f"; ÷ the gateway without Redis: {vs_plain:.2f} (CPU per request "
                    f"{cpu_plain:.2f}x)"
                )
            elif base_name == "gateway":
                line += f" (no {BASELINE}: the ratio includes rate limits and metering in Redis)"
            lines.append(line)
    for latency in latencies:
        shared, plain = found.get((BASELINE, latency)), found.get(("gateway", latency))
        if shared is not None and plain is not None and plain.served_rps:
            ratio, rounds, cpu = _versus(shared, plain)
            lines.append(
                f"- no goal: shared state in Redis (rate limits, APQ, metering), plain JWT path, "
                f"c={AUTH_CONCURRENCY}, {latency:g} ms: {BASELINE}/gateway = {ratio:.2f}"
                f"{rounds_note(rounds, ' (', ')')}; "
                f"CPU per request {cpu:.2f}x"
            )
    return lines
