"""Three gateway processes on one Redis act as one (SPEC section 11): N replicas behind a load
balancer, each a real `bff serve` subprocess over the same sample services.

A token issued by one replica works on the others (and its refresh token rotates on another,
its reuse refused by a third); a token revoked through one is refused by the others within
SPEC's 2 s; a client has one rate-limit budget across them; and the usage report of any replica
adds up the calls served by all. Both token formats: JWTs (signed, revocations listed in Redis)
and opaque tokens (claims in Redis). The Redis is a server of the test's own, so the counts
here are exact whatever else runs against the machine's shared one.
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from services import SERVICE_NAMES, RunningServices
from tests.support import running_shop
from tests.test_cli import BFF, child_env, write_config
from tests.test_token_endpoints import Gateway

REPLICAS = 3
DEADLINE = 30.0
REVOCATION_BOUND = 2.0  # SPEC section 10: refused by every replica within 2 seconds
BUDGET = 6  # requests a minute of the rate-limited test user
RATE_LIMITED_USER = ("user3", "password3")
SECRET = "replicas-test-secret-0123456789abcdef"
SERVING = re.compile(r"bff: serving on http://127\.0\.0\.1:(\d+)/graphql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of this module's own on a free loopback port, without persistence."""
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url)
    try:
        end = time.monotonic() + DEADLINE
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > end:
                    pytest.fail(f"redis-server on port {port} did not start")
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def replica_shop() -> Iterator[RunningServices]:
    with running_shop() as shop:
        yield shop


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    stderr: Path
    gateway: Gateway | None = None

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def replica_config(shop: RunningServices, redis_url: str, token_format: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 8000},
        "upstreams": {
            name: {"instances": [{"url": u} for u in shop.urls[name]]} for name in SERVICE_NAMES
        },
        "auth": {
            "token_format": token_format,
            "store": "redis",
            "jwt": {"algorithm": "HS256", "secret": SECRET},
        },
        "redis": {"url": redis_url},
        "rate_limits": {
            "default": {"requests": 100_000, "per": "1m"},
            "clients": {f"user:{RATE_LIMITED_USER[0][4:]}": {"requests": BUDGET, "per": "1m"}},
        },
    }


@pytest.fixture(scope="module", params=["jwt", "opaque"])
def replicas(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    replica_shop: RunningServices,
    own_redis: str,
) -> Iterator[list[Gateway]]:
    """Three `bff serve` processes, one config, one Redis database per token format."""
    token_format: str = request.param
    database = {"jwt": 0, "opaque": 1}[token_format]
    directory = tmp_path_factory.mktemp(f"replicas-{token_format}")
    config = write_config(
        directory / "bff.yaml",
        replica_config(replica_shop, f"{own_redis}/{database}", token_format),
    )
    with ExitStack() as stack:
        started = []
        for i in range(REPLICAS):
            stderr = directory / f"stderr-{i}"
            with stderr.open("wb") as err:
                process = subprocess.Popen(
                    [*BFF, "serve", "--config", str(config), "--port", "0"],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=child_env(),
                )
            stack.callback(stop, process)
            started.append(Replica(process, stderr))
        end = time.monotonic() + DEADLINE
        for replica in started:
            while replica.gateway is None:
                found = SERVING.search(replica.log())
                if found:
                    replica.gateway = Gateway(f"http://127.0.0.1:{found.group(1)}")
                    stack.callback(replica.gateway.close)
                elif replica.process.poll() is not None or time.monotonic() > end:
                    pytest.fail(f"a replica did not start: {replica.log()}")
                else:
                    time.sleep(0.02)
        yield [r.gateway for r in started if r.gateway is not None]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def first_refusal(gateway: Gateway, token: str) -> float:
    """When the first request that `gateway` answered 401 for `token` was sent (monotonic)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        sent = time.monotonic()
        if gateway.me(token).status_code == 401:
            return sent
        time.sleep(0.02)
    pytest.fail(f"{gateway.http.base_url} still accepts a revoked token after {DEADLINE} s")


def test_a_token_issued_by_one_replica_works_on_every_other(replicas: list[Gateway]) -> None:
    a, b, c = replicas
    tokens = a.login()
    for gateway in (b, c):
        response = gateway.me(tokens["access_token"])
        assert response.status_code == 200, response.text
        assert response.json()["data"]["me"]["id"] == "2"
    # The refresh token rotates on another replica, and its reuse is refused on a third.
    rotated = b.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert c.me(rotated.json()["access_token"]).status_code == 200
    reused = c.refresh(tokens["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_a_token_revoked_on_one_replica_is_refused_by_the_others_within_2_s(
    replicas: list[Gateway],
) -> None:
    a, b, c = replicas
    token = a.login()["access_token"]
    for gateway in replicas:  # every replica has seen (and may have cached) it as valid
        assert gateway.me(token).status_code == 200
    assert a.revoke(token).status_code == 200
    revoked = time.monotonic()
    assert a.me(token).status_code == 401  # at once where it was revoked
    with ThreadPoolExecutor(2) as pool:
        refused = list(pool.map(lambda gateway: first_refusal(gateway, token), (b, c)))
    for when in refused:
        assert when - revoked <= REVOCATION_BOUND, f"refused {when - revoked:.2f} s after revoke"


def test_one_rate_limit_budget_across_the_replicas(replicas: list[Gateway]) -> None:
    a, _, _ = replicas
    token = a.login(*RATE_LIMITED_USER)["access_token"]
    statuses = [
        gateway.gql.post("{ __typename }", token=token).status_code
        for gateway in itertools.islice(itertools.cycle(replicas), 3 * BUDGET)
    ]
    # A replica of its own would let BUDGET through on each, 3 * BUDGET in all.
    assert statuses.count(200) == BUDGET, statuses
    assert statuses[:BUDGET] == [200] * BUDGET
    assert set(statuses[BUDGET:]) == {429}
    refused = replicas[BUDGET % REPLICAS].gql.post("{ __typename }", token=token)
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_usage_adds_up_across_the_replicas(replicas: list[Gateway]) -> None:
    admin = replicas[0].login("user1", "password1")["access_token"]
    per_replica = [2, 3, 4]
    for gateway, count in zip(replicas, per_replica, strict=True):
        for _ in range(count):
            gateway.gql.data("query Replicated { product(id: 1) { id } }", token=admin)

    def calls_seen_by(gateway: Gateway) -> int:
        response = gateway.http.get(
            "/admin/usage",
            params={"operation": "Replicated"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 200, response.text
        return sum(row["calls"] for row in response.json()["operations"])

    # Each replica's meter flushes to Redis once a second: wait for every one to have done so.
    end = time.monotonic() + DEADLINE
    while (seen := calls_seen_by(replicas[2])) < sum(per_replica):
        assert time.monotonic() < end, f"usage stuck at {seen} of {sum(per_replica)}"
        time.sleep(0.1)
    assert seen == sum(per_replica)
    assert [calls_seen_by(gateway) for gateway in replicas] == [sum(per_replica)] * REPLICAS
