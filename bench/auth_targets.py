"""The gateway under the Dashboard with the token kinds of SPEC section 5, beside the plain path.

`gateway` is the plain JWT path (memory token store: revocations are a local lookup). Two more
gateways run on the same config but for `auth`, in the same run and stack:

- `gateway-opaque`: an opaque access token whose claims live in Redis (`token_format: opaque`,
  `store: redis`), looked up through the gateway's one-second local cache;
- `gateway-jwt-redis`: a JWT with revocation checks against Redis (`store: redis`): the
  revocation list is read from Redis in the background, the request checks it in memory.

Each logs in through `POST /auth/token` (the admin of the sample auth service, who holds
`orders:read`), so the token it is measured with is one it issued itself. They are measured on
the Dashboard at c=32 only, where the goal is stated: each at least `AUTH_GOAL` times the plain
gateway's served req/s. They need Redis (`REDIS_URL`, default 127.0.0.1:6379): without one
they are left out, with a warning.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import orjson

from bench.procs import http_post

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH_TARGETS: dict[str, dict[str, Any]] = {
    "gateway-opaque": {"token_format": "opaque", "store": "redis"},
    "gateway-jwt-redis": {"token_format": "jwt", "store": "redis"},
}
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


def auth_config(base: dict[str, Any], target: str) -> dict[str, Any]:
    """The plain gateway's config with `target`'s auth, on a key prefix of its own."""
    auth = {**base["auth"], **AUTH_TARGETS[target], "access_ttl": ACCESS_TTL}
    redis = {"url": REDIS_URL, "key_prefix": f"bffbench:{secrets.token_hex(6)}:"}
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


def goal_lines(cells: Sequence[Any]) -> list[str]:
    """One PASS/FAIL line per auth target and latency: served req/s ÷ the plain gateway's."""
    plain = {
        c.latency_ms: c
        for c in cells
        if c.target == "gateway"
        and c.workload == AUTH_WORKLOAD
        and c.concurrency == AUTH_CONCURRENCY
        and c.phase == "pinned"
    }
    lines = []
    for target in AUTH_TARGETS:
        found = [
            c
            for c in cells
            if c.target == target and c.workload == AUTH_WORKLOAD and c.phase == "pinned"
        ]
        label = f"Dashboard throughput under {target}, c={AUTH_CONCURRENCY}"
        if not found:
            lines.append(f"- not measured: {label} (needs Redis and the gateway target)")
        for cell in sorted(found, key=lambda c: c.latency_ms):
            base = plain.get(cell.latency_ms)
            if base is None or not base.served_rps:
                lines.append(f"- not measured: {label}, {cell.latency_ms:g} ms (no plain cell)")
                continue
            ratio = cell.served_rps / base.served_rps
            verdict = "PASS" if ratio >= AUTH_GOAL else "FAIL"
            lines.append(
                f"- {verdict}: {label}, {cell.latency_ms:g} ms: {target}/gateway = {ratio:.2f} "
                f"(goal ≥ {AUTH_GOAL:.2f}); {target} {cell.served_rps:,.0f} req/s, "
                f"gateway {base.served_rps:,.0f} req/s"
            )
    return lines
