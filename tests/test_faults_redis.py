"""Redis stopped and started again under running gateways (SPEC section 10, "Redis
unreachable"; issue 21, "Faults"): a `redis-server` of the test's own on a free loopback port,
stopped for real (the process exits) and started again on the same port with its append-only
file, as a restarted Redis comes back with its data.

While it is down: opaque access tokens and refresh tokens get 503 `UPSTREAM_UNAVAILABLE` (never
a 500, never let in), JWTs keep verifying, rate limits follow `on_store_error` (`allow` lets
requests through, `deny` answers 503 with `Retry-After`), and `/readyz` fails only where the
token format is `opaque`. When it is back, all of it works again without restarting anything:
the same opaque token and refresh token, logins, budgets counted in Redis.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bff.config import Settings, settings_from_dict
from services import RunningServices
from tests.support import (
    AUDIENCE,
    DASHBOARD,
    ISSUER,
    SECRET,
    running_gateway,
    running_shop,
    sign,
)
from tests.test_token_endpoints import Gateway

WAIT = 20.0  # seconds a state change may take on a loaded machine
BUDGET = 3  # requests a minute of the rate-limited subjects


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.05)


class RedisServer:
    """A `redis-server` on one port that a test stops and starts again; its data survives a
    restart (append-only file in `directory`, flushed at shutdown)."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "yes", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"redis-server on port {self.port} did not start")
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=WAIT)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_shop() -> Iterator[RunningServices]:
    with running_shop() as shop:
        yield shop


def settings(
    shop: RunningServices, redis_url: str, prefix: str, token_format: str, on_store_error: str
) -> Settings:
    data: dict[str, Any] = {
        "upstreams": {
            name: {"instances": [{"url": u} for u in urls]} for name, urls in shop.urls.items()
        },
        "auth": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwt": {"algorithm": "HS256", "secret": SECRET},
            "token_format": token_format,
            "store": "redis",
        },
        "redis": {"url": redis_url, "key_prefix": prefix},
        "rate_limits": {
            "default": {"requests": 100_000, "per": "1m"},
            "clients": {
                f"user:{sub}": {"requests": BUDGET, "per": "1m"} for sub in ("9", "10", "11", "12")
            },
            "on_store_error": on_store_error,
        },
    }
    return settings_from_dict(data)


def code(response: httpx.Response) -> str:
    codes: str = response.json()["errors"][0]["extensions"]["code"]
    return codes


def readyz(gateway: Gateway) -> tuple[int, Any]:
    response = gateway.http.get("/readyz")
    return response.status_code, response.json().get("checks")


def typename(gateway: Gateway, token: str | None = None) -> httpx.Response:
    return gateway.gql.post("{ __typename }", token=token)


def spend_budget(gateway: Gateway, sub: str) -> list[int]:
    """Statuses of BUDGET + 1 requests of subject `sub`: the last one is over its budget."""
    token = sign(sub)
    return [typename(gateway, token).status_code for _ in range(BUDGET + 1)]


def test_redis_stopped_and_restarted(
    redis_shop: RunningServices, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = own_redis.url
    with ExitStack() as stack:

        def serve(prefix: str, token_format: str, on_store_error: str) -> Gateway:
            config = settings(redis_shop, url, prefix, token_format, on_store_error)
            gateway = Gateway(stack.enter_context(running_gateway(config)))
            stack.callback(gateway.close)
            return gateway

        opaque = serve("fault-a:", "opaque", "allow")
        jwt = serve("fault-b:", "jwt", "allow")
        strict = serve("fault-c:", "jwt", "deny")

        # Redis up: everything works, budgets are counted
        tokens = opaque.login()
        assert opaque.me(tokens["access_token"]).status_code == 200
        assert jwt.me(sign("4")).json()["data"] == {"me": {"id": "4"}}
        assert spend_budget(jwt, "9") == [200] * BUDGET + [429]
        for gateway in (opaque, jwt, strict):
            assert readyz(gateway) == (200, {"token_store": True})

        own_redis.stop()

        # opaque access and refresh tokens fail closed, with a 503 and a code
        eventually(lambda: opaque.me(tokens["access_token"]).status_code == 503, "opaque 503")
        assert code(opaque.me(tokens["access_token"])) == "UPSTREAM_UNAVAILABLE"
        refresh = opaque.refresh(tokens["refresh_token"])
        assert refresh.status_code == 503
        assert opaque.token().status_code == 503  # a login needs the store for its tokens
        assert typename(opaque).status_code == 200  # anonymous: rate limits allow
        eventually(lambda: readyz(opaque) == (503, {"token_store": False}), "opaque not ready")
        # JWTs keep verifying; rate limits allow, or deny with a retryable 503
        assert jwt.me(sign("4")).json()["data"] == {"me": {"id": "4"}}
        assert spend_budget(jwt, "10") == [200] * (BUDGET + 1)  # nothing counted: allowed
        assert readyz(jwt) == (200, {"token_store": True})
        denied = strict.me(sign("4"))
        assert denied.status_code == 503 and denied.headers["Retry-After"] == "1"
        assert code(denied) == "UPSTREAM_UNAVAILABLE"
        assert readyz(strict) == (200, {"token_store": True})
        # and nothing else answers 500 meanwhile
        for gateway in (opaque, jwt, strict):
            statuses = [
                gateway.http.get("/healthz").status_code,
                gateway.http.get("/metrics").status_code,
                gateway.revoke("bfa_" + "x" * 43).status_code,
                gateway.me("bfa_" + "y" * 43).status_code,
                gateway.gql.post(DASHBOARD, {"first": 2}, token=sign()).status_code,
            ]
            assert all(status < 500 or status == 503 for status in statuses), statuses
            assert statuses[0] == 200

        own_redis.start()

        # everything recovers, nothing restarted: the same tokens, logins, budgets
        eventually(lambda: opaque.me(tokens["access_token"]).status_code == 200, "opaque back")
        eventually(lambda: readyz(opaque) == (200, {"token_store": True}), "opaque ready")
        fresh = opaque.refresh(tokens["refresh_token"])
        assert fresh.status_code == 200, fresh.text
        assert opaque.me(fresh.json()["access_token"]).status_code == 200
        assert opaque.me(opaque.login()["access_token"]).status_code == 200
        eventually(lambda: strict.me(sign("4")).status_code == 200, "deny lets through again")
        assert spend_budget(jwt, "11") == [200] * BUDGET + [429]
        assert spend_budget(strict, "12") == [200] * BUDGET + [429]
    unhandled = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert unhandled == []
