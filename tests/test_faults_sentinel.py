"""A Sentinel failover (issue 21, SPEC section 11's `redis.sentinel`): a master, its replica and
one sentinel on loopback, under a gateway that keeps opaque tokens (and its rate limits) there.
The master is killed after its replica has acknowledged every token (`WAIT 1`); while the
sentinel promotes the replica, requests are answered as SPEC section 10 says (a token that
cannot be checked is a 503, never a 500, never let in); once it has, the tokens issued before,
refresh tokens included, work again on the new master, without a restart of the gateway."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from bff.config import settings_from_dict
from services import RunningServices
from tests.support import AUDIENCE, ISSUER, SECRET, running_gateway
from tests.test_faults_cluster import bearer
from tests.test_redis_cluster import answers, free_port, wait_until
from tests.test_token_endpoints import Gateway

ME = {"query": "{ me { id } }"}
FAILOVER_BOUND = 30.0  # seconds from the master's death to every token answering again
MASTER = "bffshop"


def start(stack: ExitStack, argv: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(lambda: process.poll() is None and (process.kill(), process.wait(10)))
    return process


def redis_server(stack: ExitStack, work: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server") or "redis-server"
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
    return start(stack, [*argv, "--save", "", "--appendonly", "no", *extra])


def replication(port: int) -> dict[str, Any]:
    """`INFO replication` of the server on `port` (empty when it does not answer)."""
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=1)
    try:
        return dict(client.info("replication"))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def master_of(sentinel: int) -> int | None:
    """The master's port as the sentinel names it now."""
    client = redis.Redis(host="127.0.0.1", port=sentinel, socket_timeout=1)
    try:
        found = client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        return int(found[1]) if found else None
    except redis.RedisError:
        return None
    finally:
        client.close()


def sentinel_sees_the_replica(sentinel: int, replica: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=sentinel, decode_responses=True, socket_timeout=1)
    try:
        replicas = client.execute_command("SENTINEL", "replicas", MASTER)
    except redis.RedisError:
        return False
    finally:
        client.close()
    for entry in replicas:
        fields = (
            dict(zip(entry[::2], entry[1::2], strict=False)) if isinstance(entry, list) else entry
        )
        if int(fields.get("port", 0)) == replica and fields.get("master-link-status") == "ok":
            return True
    return False


@dataclass
class Topology:
    master: int
    replica: int
    sentinel: int
    master_process: subprocess.Popen[bytes]


@pytest.fixture
def sentinel_topology(tmp_path: Path) -> Iterator[Topology]:
    """A master, a replica of it, and one sentinel (quorum 1) watching them, on loopback."""
    master, replica, sentinel = free_port(), free_port(), free_port()
    with ExitStack() as stack:
        for port in (master, replica):
            (tmp_path / str(port)).mkdir()
        # no delay before a replica's first sync (5 s by default)
        sync = ("--repl-diskless-sync-delay", "0")
        master_process = redis_server(stack, tmp_path / str(master), master, *sync)
        wait_until(lambda: answers(master), "the master answers")
        redis_server(
            stack, tmp_path / str(replica), replica, "--replicaof", "127.0.0.1", str(master)
        )
        wait_until(
            lambda: replication(replica).get("master_link_status") == "up", "the replica syncs"
        )
        conf = tmp_path / "sentinel.conf"
        conf.write_text(
            f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 2000\n"
        )
        server = shutil.which("redis-server") or "redis-server"
        start(stack, [server, str(conf), "--sentinel"])
        wait_until(lambda: master_of(sentinel) == master, "the sentinel knows the master")
        wait_until(
            lambda: sentinel_sees_the_replica(sentinel, replica), "the sentinel sees the replica"
        )
        yield Topology(master, replica, sentinel, master_process)


def test_tokens_survive_a_sentinel_failover_with_only_503s_meanwhile(
    shop: RunningServices, sentinel_topology: Topology
) -> None:
    top = sentinel_topology
    settings = settings_from_dict(
        {
            "upstreams": {
                name: {"instances": [{"url": u} for u in urls]} for name, urls in shop.urls.items()
            },
            "auth": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwt": {"algorithm": "HS256", "secret": SECRET},
                "token_format": "opaque",
                "store": "redis",
            },
            "redis": {
                # the URL's host is nothing: only the sentinel tells the gateway where to go
                "url": f"redis://127.0.0.1:{free_port()}/0",
                "sentinel": {"master": MASTER, "nodes": [f"127.0.0.1:{top.sentinel}"]},
                "key_prefix": f"bfftest:{uuid.uuid4().hex}:",
            },
            "rate_limits": {"default": {"requests": 10_000, "per": "1m"}},
        }
    )
    with running_gateway(settings) as url:
        gateway = Gateway(url)
        pairs = [gateway.login(f"user{n}", f"password{n}") for n in range(2, 6)]
        tokens = [p["access_token"] for p in pairs]
        for token in tokens:
            answer = gateway.http.post("/graphql", json=ME, headers=bearer(token))
            assert answer.status_code == 200, answer.text
        # every write so far is on the replica before the master dies
        master = redis.Redis(host="127.0.0.1", port=top.master, socket_timeout=5)
        try:
            assert master.execute_command("WAIT", 1, 5000) == 1
        finally:
            master.close()
        top.master_process.kill()
        top.master_process.wait(10)
        statuses: set[int] = set()
        deadline = time.monotonic() + FAILOVER_BOUND
        recovered = False
        while time.monotonic() < deadline and not recovered:
            codes = [
                gateway.http.post("/graphql", json=ME, headers=bearer(t)).status_code
                for t in tokens
            ]
            statuses.update(codes)
            promoted = master_of(top.sentinel) == top.replica
            recovered = promoted and all(code == 200 for code in codes)
            if not recovered:
                time.sleep(0.2)
        assert recovered, f"not recovered within {FAILOVER_BOUND} s: {sorted(statuses)}"
        assert statuses <= {200, 503}, statuses  # fail closed meanwhile, never a 500
        assert 503 in statuses  # the first round came before the sentinel could see it down
        assert replication(top.replica).get("role") == "master"
        # the promoted replica has the refresh tokens too: they rotate, and reuse is seen
        for n, pair in enumerate(pairs, start=2):
            again = gateway.refresh(pair["refresh_token"]).json()
            assert "access_token" in again, again
            checked = gateway.http.post("/graphql", json=ME, headers=bearer(again["access_token"]))
            assert checked.status_code == 200 and checked.json()["data"]["me"]["id"] == str(n)
        reused = gateway.refresh(pairs[0]["refresh_token"]).json()
        assert reused["error"] == "invalid_grant", reused
        assert gateway.login("user9", "password9")["access_token"]  # and new logins work
        gateway.close()
