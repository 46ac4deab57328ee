"""The processes one latency setting needs: sample services and the servers to measure.

Services (and, in `run.py`, the load generator and the runner) share one core; the measured
servers (the gateway, the floor and the reference) share the other, and only one of them is
under load at a time. A fresh stack per latency setting, because the services take their
latency at start-up and the gateway and floor take the services' ports. The reference needs no
services at all (it answers from memory), so it is started in one stack only.

The gateway config is generated: the six upstreams, a random HS256 secret, and rate and query
limits raised so far that they never reject a benchmark request (their checks still run).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.auth_targets import (
    REDIS_URL,
    REDIS_URL_SET,
    auth_config,
    is_auth_target,
    login,
    redis_answers,
)
from bench.procs import Child, Children, Pinning, free_port, http_get

SERVICES = ("users", "catalog", "orders", "reviews", "inventory", "auth")
START_TIMEOUT = 60.0  # seconds; data generation and imports take a few on a loaded machine
TOKEN_TTL = 7 * 24 * 3600  # a token valid for the whole of any run
NEVER_LIMIT = 1_000_000_000
READY_QUERY = "/graphql?query=%7B__typename%7D"  # `{__typename}` over GET: 200 once it serves


@dataclass
class Server:
    """One measured server: its process (tree) and base URL."""

    child: Child
    url: str
    workers: int = 1


@dataclass(frozen=True)
class Redis:
    """The Redis the auth targets share."""

    url: str
    where: str  # for the report
    child: Child | None = None  # a redis-server of the run's own (its CPU is not foreign)


@dataclass
class Stack:
    latency_ms: float
    services: Child
    service_urls: dict[str, str]
    token: str
    config_path: Path
    servers: dict[str, Server] = field(default_factory=dict)  # by target name
    tokens: dict[str, str] = field(default_factory=dict)  # tokens other than `token`, by target
    configs: dict[str, Path] = field(default_factory=dict)  # configs other than `config_path`
    redis: Redis | None = None  # the auth targets'

    def children(self) -> tuple[Child, ...]:
        ours = (self.services, *(server.child for server in self.servers.values()))
        return ours if self.redis is None or self.redis.child is None else (*ours, self.redis.child)

    def upstream_requests(self) -> int:
        """Requests served by all services so far (their `/_stats` counters, summed)."""
        total = 0
        for url in self.service_urls.values():
            total += int(orjson.loads(http_get(f"{url}/_stats"))["requests"])
        return total


def gateway_config(service_urls: dict[str, str], secret: str) -> dict[str, Any]:
    """The bench gateway. Shared upstream calls are off: every cell's load is N identical
    queries at once, which dedupe would fold into one call (that is `bench.cache`'s
    measurement), and the cells count the requests a target worked on by the upstream calls
    it made (`Cell.executed`), as the floor makes them: one set per request."""
    upstream = {"dedupe": False}
    return {
        "server": {"host": "127.0.0.1"},
        "upstreams": {
            name: {"instances": [{"url": url}], **upstream} for name, url in service_urls.items()
        },
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


def start_services(children: Children, pinning: Pinning, latency_ms: float, *flags: str) -> Child:
    """The sample services at `latency_ms`; `flags` are more of `python -m services`'s."""
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
        *flags,
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


def _start_printing_url(children: Children, name: str, marker: str, argv: list[str]) -> Server:
    """Start a bench server that binds port 0 and prints `<marker> http://…` once bound."""
    child = children.start(name, argv)
    lines = child.wait_for_line(lambda line: line.startswith(f"{marker} http://"), START_TIMEOUT)
    url = next(line.split()[1] for line in lines if line.startswith(f"{marker} http://"))
    return Server(child, url)


def serve_config(
    children: Children,
    pinning: Pinning,
    config_path: Path,
    name: str = "gateway",
    workers: int = 1,
    ready_path: str = "/healthz",
) -> Server:
    """`bff serve --config config_path` pinned to the target core, on a fresh port, once it
    answers `ready_path`; `workers` > 1 adds `--workers`."""
    port = free_port()
    argv = [
        *pinning.prefix(pinning.target_core),
        sys.executable,
        "-m",
        "bff.cli",
        "serve",
        "--config",
        str(config_path),
        "--port",
        str(port),
    ]
    if workers > 1:
        argv += ["--workers", str(workers)]
    child = children.start(name, argv)
    server = Server(child, f"http://127.0.0.1:{port}", workers)
    child.wait_http_ok(f"{server.url}{ready_path}", START_TIMEOUT)
    return server


def start_gateway(
    children: Children, pinning: Pinning, stack: Stack, workers: int = 1, target: str = "gateway"
) -> Server:
    """`bff serve` with the target's config; `workers` > 1 adds `--workers`."""
    suffix = "" if workers == 1 else f"-{workers}workers"
    return serve_config(
        children,
        pinning,
        stack.configs.get(target, stack.config_path),
        f"{target}-{stack.latency_ms:g}ms{suffix}",
        workers,
    )


def start_floor(children: Children, pinning: Pinning, stack: Stack, floor_client: str) -> Server:
    argv = [
        *pinning.prefix(pinning.target_core),
        sys.executable,
        "-m",
        "bench.floor",
        "--client",
        floor_client,
        *(f"--upstream={name}={stack.service_urls[name]}" for name in SERVICES if name != "auth"),
    ]
    server = _start_printing_url(children, f"floor-{stack.latency_ms:g}ms", "floor", argv)
    server.child.wait_http_ok(f"{server.url}/health", START_TIMEOUT)
    return server


def start_reference(children: Children, pinning: Pinning) -> Server:
    argv = [*pinning.prefix(pinning.target_core), sys.executable, "-m", "bench.reference"]
    server = _start_printing_url(children, "reference", "reference", argv)
    server.child.wait_http_ok(f"{server.url}{READY_QUERY}", START_TIMEOUT)
    return server


def start_stack(
    children: Children,
    pinning: Pinning,
    latency_ms: float,
    work_dir: Path,
    *,
    targets: Sequence[str],
    floor_client: str = "raw",
    redis: Redis | None = None,
) -> Stack:
    """Services with `latency_ms`, a gateway config for them, and the servers of `targets`
    (the auth targets on `redis`)."""
    services = start_services(children, pinning, latency_ms)
    service_urls = service_urls_of(services)
    config_path = work_dir / f"bff-{latency_ms:g}ms.yaml"
    config = gateway_config(service_urls, secrets.token_urlsafe(32))
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    stack = Stack(latency_ms, services, service_urls, sign_token(config_path), config_path)
    stack.redis = redis
    for target in targets:
        if target == "gateway":
            stack.servers[target] = start_gateway(children, pinning, stack)
        elif target == "floor":
            stack.servers[target] = start_floor(children, pinning, stack, floor_client)
        elif target == "reference":
            stack.servers[target] = start_reference(children, pinning)
        elif is_auth_target(target):
            if redis is None:
                raise ValueError(f"{target} needs a Redis")
            stack.configs[target] = work_dir / f"{target}-{latency_ms:g}ms.yaml"
            variant = auth_config(config, target, redis.url)
            stack.configs[target].write_text(yaml.safe_dump(variant, sort_keys=False))
            stack.servers[target] = start_gateway(children, pinning, stack, target=target)
            stack.tokens[target] = login(stack.servers[target].url)
        else:
            raise ValueError(f"unknown target {target!r}")
    return stack


def start_redis(children: Children, pinning: Pinning) -> Redis:
    """A private redis-server on the load core, without persistence.

    On the load core, as in production Redis runs elsewhere: unpinned, the scheduler tends to
    wake it on the core of the gateway that just wrote to it, where its work counts against
    the gateway's throughput (and its CPU is not the gateway's, so CPU per request misses it)."""
    port = free_port()
    argv = [*pinning.prefix(pinning.load_core), "redis-server", "--port", str(port)]
    child = children.start(
        "redis", [*argv, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    )
    where = "a private redis-server" + (
        " on the load core" if pinning.load_core is not None else ""
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return Redis(f"redis://127.0.0.1:{port}/0", where, child)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def redis_for_auth(children: Children, pinning: Pinning) -> Redis | None:
    """The Redis of the auth targets: `REDIS_URL`'s when set; else a private redis-server
    (`start_redis`) when one is installed; else the default URL's. None when it does not
    answer."""
    if REDIS_URL_SET or shutil.which("redis-server") is None:
        return Redis(REDIS_URL, f"{REDIS_URL} (not pinned)") if redis_answers() else None
    return start_redis(children, pinning)


def stop_server(children: Children, stack: Stack, target: str) -> None:
    server = stack.servers.pop(target, None)
    if server is not None:
        children.stop(server.child)


def stop_stack(children: Children, stack: Stack) -> None:
    for target in list(stack.servers):
        stop_server(children, stack, target)
    children.stop(stack.services)
