"""The processes one latency setting needs: sample services, the gateway and the floor.

Services (and, in `run.py`, the load generator and the runner) share one core; the gateway and
the floor share the other, and only one of them is under load at a time. A fresh stack per
latency setting, because the services take their latency at start-up and the gateway and
floor take the services' ports.

The gateway config is generated: the six upstreams, a random HS256 secret, and rate and query
limits raised so far that they never reject a benchmark request (their checks still run).
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.procs import Child, Children, Pinning, free_port, http_get

SERVICES = ("users", "catalog", "orders", "reviews", "inventory", "auth")
START_TIMEOUT = 60.0  # seconds; data generation and imports take a few on a loaded machine
TOKEN_TTL = 7 * 24 * 3600  # a token valid for the whole of any run
NEVER_LIMIT = 1_000_000_000


@dataclass
class Stack:
    latency_ms: float
    services: Child
    service_urls: dict[str, str]
    gateway: Child
    gateway_url: str
    floor: Child
    floor_url: str
    token: str

    def targets(self) -> dict[str, tuple[Child, str]]:
        return {"gateway": (self.gateway, self.gateway_url), "floor": (self.floor, self.floor_url)}

    def children(self) -> tuple[Child, ...]:
        return self.services, self.gateway, self.floor

    def upstream_requests(self) -> int:
        """Requests served by all services so far (their `/_stats` counters, summed)."""
        total = 0
        for url in self.service_urls.values():
            total += int(orjson.loads(http_get(f"{url}/_stats"))["requests"])
        return total


def gateway_config(service_urls: dict[str, str], port: int, secret: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "upstreams": {name: {"instances": [{"url": url}]} for name, url in service_urls.items()},
        "auth": {"jwt": {"algorithm": "HS256", "secret": secret}},
        "rate_limits": {"default": {"requests": NEVER_LIMIT, "per": "1s"}},
        "limits": {"max_cost": NEVER_LIMIT, "max_aliases": 1000, "max_depth": 50},
    }


def sign_token(config_path: Path) -> str:
    """A token for user 1 with scope `orders:read`, signed as the gateway expects."""
    from bff.auth import TokenSigner
    from bff.config import load_settings

    auth = load_settings(str(config_path)).auth
    key = auth.jwt.signing_key()
    if key is None:
        raise RuntimeError("the generated config has no HS256 secret")
    signer = TokenSigner(auth.jwt.algorithm, key, auth.issuer, auth.audience)
    return signer.sign("1", ["orders:read"], ttl=TOKEN_TTL)


def start_services(children: Children, pinning: Pinning, latency_ms: float) -> Child:
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
        "--latency",
        f"{latency_ms:g}ms",
    ]
    return children.start(f"services-{latency_ms:g}ms", argv)


def service_urls_of(child: Child) -> dict[str, str]:
    lines = child.wait_for_line(lambda line: line.strip() == "ready", START_TIMEOUT)
    urls: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] in SERVICES and parts[1].startswith("http://127.0.0.1:"):
            urls[parts[0]] = parts[1]
    missing = [name for name in SERVICES if name not in urls]
    if missing:
        raise child.failed(f"printed no URL for {', '.join(missing)}")
    return urls


def start_stack(
    children: Children, pinning: Pinning, latency_ms: float, work_dir: Path, floor_client: str
) -> Stack:
    services = start_services(children, pinning, latency_ms)
    service_urls = service_urls_of(services)

    port = free_port()
    config_path = work_dir / f"bff-{latency_ms:g}ms.yaml"
    config = gateway_config(service_urls, port, secrets.token_urlsafe(32))
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    gateway = children.start(
        f"gateway-{latency_ms:g}ms",
        [
            *pinning.prefix(pinning.target_core),
            sys.executable,
            "-m",
            "bff.cli",
            "serve",
            "--config",
            str(config_path),
        ],
    )
    floor = children.start(
        f"floor-{latency_ms:g}ms",
        [
            *pinning.prefix(pinning.target_core),
            sys.executable,
            "-m",
            "bench.floor",
            "--client",
            floor_client,
            *(f"--upstream={name}={service_urls[name]}" for name in SERVICES if name != "auth"),
        ],
    )
    gateway_url = f"http://127.0.0.1:{port}"
    gateway.wait_http_ok(f"{gateway_url}/healthz", START_TIMEOUT)
    floor_line = floor.wait_for_line(lambda line: line.startswith("floor http://"), START_TIMEOUT)
    floor_url = next(line.split()[1] for line in floor_line if line.startswith("floor http://"))
    floor.wait_http_ok(f"{floor_url}/health", START_TIMEOUT)
    return Stack(
        latency_ms=latency_ms,
        services=services,
        service_urls=service_urls,
        gateway=gateway,
        gateway_url=gateway_url,
        floor=floor,
        floor_url=floor_url,
        token=sign_token(config_path),
    )


def stop_stack(children: Children, stack: Stack) -> None:
    for child in (stack.floor, stack.gateway, stack.services):
        children.stop(child)
