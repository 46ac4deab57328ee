"""Redis as it is deployed (SPEC section 11): a three-node Redis Cluster and an ACL user, each on
throwaway `redis-server`s on free loopback ports, with two real gateways on each sharing the
token store, one rate-limit budget, APQ registrations and usage counters. On the cluster, the
keys of one script share a hash tag, so the scripts run there; the keys themselves spread over
the nodes."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from bff.config import Settings, settings_from_dict
from bff.metering import RedisUsageStore, usage_report
from bff.persisted.documents import sha256_hex
from bff.shared_state import SharedState
from bff.telemetry.hub import schema_fields
from schema import schema
from services import RunningServices
from tests.support import AUDIENCE, ISSUER, SECRET, running_gateway
from tests.test_token_endpoints import Gateway

GQL = {"Accept": "application/graphql-response+json"}
PATIENCE = 60.0  # seconds (at most) for servers to start and the cluster to agree, when busy
ACL_USER, ACL_PASSWORD = "bff-gateway", "acl-password-planted-7f3a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_port() -> int:
    """A free port for a cluster node: its bus listens on the port + 10000, which must be a
    port too (a node on 58019 cannot start) and free."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {PATIENCE} s")
        time.sleep(0.05)


def answers(port: int, *auth: str) -> bool:
    try:
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            socket_timeout=0.5,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def start_server(stack: ExitStack, work: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server on `port` that is killed when `stack` closes (if still running)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    argv = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work),
        *extra,
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        process.kill()
        process.wait(10)

    stack.callback(stop)
    return process


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A three-node Redis Cluster (no replicas) on loopback; the URL of its first node."""
    ports = [cluster_port() for _ in range(3)]
    with ExitStack() as stack:
        for port in ports:
            work = tmp_path_factory.mktemp(f"cluster-{port}")
            start_server(
                stack,
                work,
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(work / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
            )
        for port in ports:
            wait_until(lambda port=port: answers(port), f"redis-server on {port} answers")
        create = [
            shutil.which("redis-cli") or "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        subprocess.run(create, check=True, capture_output=True, timeout=60)

        def ready() -> bool:
            client = redis.Redis(host="127.0.0.1", port=ports[0], decode_responses=True)
            try:
                return "cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
            finally:
                client.close()

        wait_until(ready, "the cluster reports cluster_state:ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"


@pytest.fixture(scope="module")
def acl_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server whose default user is off, with one ACL user of our own: its URL without
    credentials (the tests give them in the config) on database 3."""
    port = free_port()
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp(f"acl-{port}")
        (work / "users.acl").write_text(
            f"user default off\nuser {ACL_USER} on >{ACL_PASSWORD} ~* &* +@all\n"
        )
        start_server(stack, work, port, "--aclfile", str(work / "users.acl"))
        wait_until(lambda: answers(port, ACL_USER, ACL_PASSWORD), "the ACL user logs in")
        assert not answers(port)  # nobody gets in without the user
        yield f"redis://127.0.0.1:{port}/3"


def shop_settings(shop: RunningServices, redis_section: dict[str, Any]) -> Settings:
    return settings_from_dict(
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
            "redis": {"key_prefix": f"bfftest:{uuid.uuid4().hex}:", **redis_section},
            "rate_limits": {"default": {"requests": 4, "per": "1m"}},
        }
    )


def operations(settings: Settings) -> set[str]:
    async def read() -> set[str]:
        shared = SharedState.from_settings(settings)
        assert shared.redis is not None
        store = RedisUsageStore(shared.redis, shared.namespace("usage"))
        try:
            report = await usage_report(store, schema_fields(schema._schema))
        finally:
            await shared.aclose()
        return {str(op["operation"]) for op in report.as_json()["operations"]}

    return asyncio.run(read())


def two_replicas_act_as_one(settings: Settings) -> None:
    """Tokens, refresh reuse, one budget, APQ and metering across two gateways on `settings`."""
    query = f"query Shared {{ product(id: 1) {{ id }} }} # {uuid.uuid4().hex}"
    apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}
    with ExitStack() as stack:
        a = Gateway(stack.enter_context(running_gateway(settings)))
        b = Gateway(stack.enter_context(running_gateway(settings)))
        stack.callback(a.close)
        stack.callback(b.close)
        # tokens: issued on a, known to b; a refresh token used twice kills its family
        first = a.login()
        second = b.refresh(first["refresh_token"]).json()
        assert "access_token" in second, second
        assert a.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"  # reuse
        assert b.refresh(second["refresh_token"]).json()["error"] == "invalid_grant"
        token = b.login()["access_token"]
        bearer = {**GQL, "Authorization": f"Bearer {token}"}
        # APQ: registered on a, served by b (budget of user 2: 1 and 2 of 4)
        body = {"query": query, "extensions": apq}
        assert a.http.post("/graphql", json=body, headers=bearer).status_code == 200
        served = b.http.post("/graphql", json={"extensions": apq}, headers=bearer)
        assert served.status_code == 200, served.text
        assert served.json()["data"]["product"]["id"] == "1"
        # one budget: 3 and 4 of 4, then refused on either replica
        assert [g.me(token).status_code for g in (a, b, a, b)] == [200, 200, 429, 429]
        # metering: both replicas add to the same counters
        deadline = time.monotonic() + PATIENCE
        while "Shared" not in operations(settings) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "Shared" in operations(settings)


def test_two_gateways_act_as_one_on_a_redis_cluster(
    shop: RunningServices, cluster_url: str
) -> None:
    settings = shop_settings(shop, {"url": cluster_url, "cluster": True})
    two_replicas_act_as_one(settings)
    # the keys spread over the nodes: the prefix is not one hash tag for everything
    client = redis.RedisCluster.from_url(cluster_url, decode_responses=True)
    try:
        prefix = settings.redis.key_prefix
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        slots = {client.keyslot(k) for k in keys}
        nodes = {client.get_node_from_key(k).name for k in keys}
        assert {k[len(prefix) :].split(":", 1)[0] for k in keys} >= {"auth", "rl", "pq", "usage"}
        assert len(slots) > 3 and len(nodes) > 1, (keys, nodes)
    finally:
        client.close()


def test_the_rate_limit_script_runs_a_batch_of_many_clients_on_a_cluster(cluster_url: str) -> None:
    """One loop turn's hits of clients in different slots: one script call per slot."""
    from bff.limits import RedisRateStore, Rule

    async def scenario() -> list[tuple[bool, int, int]]:
        redis_section = {"url": cluster_url, "cluster": True, "key_prefix": "bfftest:batch:"}
        shared = SharedState.from_settings(settings_from_dict({"redis": redis_section}))
        assert shared.cluster and shared.redis is not None
        store = RedisRateStore(shared.redis, shared.namespace("rl"))
        try:
            clients = [f"user:{n}" for n in range(12)] * 2  # each client twice in the batch
            return await asyncio.gather(*(store.hit(c, Rule(1, 60.0)) for c in clients))
        finally:
            await shared.aclose()

    hits = asyncio.run(scenario())
    assert [allowed for allowed, _, _ in hits] == [True] * 12 + [False] * 12


def test_two_gateways_act_as_one_as_an_acl_user(shop: RunningServices, acl_url: str) -> None:
    settings = shop_settings(shop, {"url": acl_url, "username": ACL_USER, "password": ACL_PASSWORD})
    two_replicas_act_as_one(settings)
    client = redis.Redis.from_url(acl_url, username=ACL_USER, password=ACL_PASSWORD)
    try:
        assert client.dbsize() > 0  # on database 3, as the URL says
        client.select(0)
        assert client.dbsize() == 0
    finally:
        client.close()


def test_credentials_in_the_url_work_too(shop: RunningServices, acl_url: str) -> None:
    url = acl_url.replace("redis://", f"redis://{ACL_USER}:{ACL_PASSWORD}@")
    two_replicas_act_as_one(shop_settings(shop, {"url": url}))


def test_a_wrong_password_is_refused_and_never_logged(
    shop: RunningServices, acl_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = shop_settings(
        shop, {"url": acl_url, "username": ACL_USER, "password": "wrong-password-planted"}
    )
    with running_gateway(settings) as url:
        gateway = Gateway(url)
        try:
            answer = gateway.token()
            assert answer.status_code == 503, answer.text
        finally:
            gateway.close()
    assert "wrong-password-planted" not in caplog.text


@pytest.fixture(scope="module")
def sentinel_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and one sentinel watching it as `shop`: the sentinel's `host:port`."""
    master, sentinel = free_port(), free_port()
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp(f"sentinel-{sentinel}")
        start_server(stack, work, master)
        wait_until(lambda: answers(master), "the master answers")
        conf = work / "sentinel.conf"
        conf.write_text(
            f"port {sentinel}\nbind 127.0.0.1\ndir {work}\n"
            f"sentinel monitor shop 127.0.0.1 {master} 1\n"
            "sentinel down-after-milliseconds shop 2000\n"
        )
        server = shutil.which("redis-server") or "redis-server"
        process = subprocess.Popen(
            [server, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        stack.callback(lambda: (process.kill(), process.wait(10)))

        def knows_the_master() -> bool:
            client = redis.Redis(host="127.0.0.1", port=sentinel, socket_timeout=0.5)
            try:
                found = client.execute_command("SENTINEL", "get-master-addr-by-name", "shop")
                return bool(found) and int(found[1]) == master
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_until(knows_the_master, "the sentinel knows the master")
        yield f"127.0.0.1:{sentinel}"


def test_two_gateways_act_as_one_on_the_master_a_sentinel_names(
    shop: RunningServices, sentinel_node: str
) -> None:
    # the URL's host is nothing: only the sentinel can have told the gateways where to go
    url = f"redis://127.0.0.1:{free_port()}/0"
    sentinel = {"master": "shop", "nodes": [sentinel_node]}
    two_replicas_act_as_one(shop_settings(shop, {"url": url, "sentinel": sentinel}))


@pytest.fixture(scope="module")
def cacheable_shop() -> Iterator[RunningServices]:
    from services import SERVICE_NAMES, ServiceOptions, ServiceSpec
    from tests.support import running_shop

    options = ServiceOptions(cache_control="max-age=60", etag=True)
    with running_shop(*(ServiceSpec(name, options=options) for name in SERVICE_NAMES)) as shop:
        yield shop


def test_two_gateways_share_one_response_cache_and_its_items_on_a_cluster(
    cacheable_shop: RunningServices, cluster_url: str
) -> None:
    """Whole answers and batch items in Redis Cluster: reads of keys in many slots (MGET is
    refused across slots) find what the other replica stored."""
    from tests.support import GraphQLClient, UpstreamCalls, gateway_settings

    prefix = f"bfftest:{uuid.uuid4().hex}:"
    settings = gateway_settings(
        cacheable_shop.urls,
        cache={"enabled": True, "store": "redis"},
        redis={"url": cluster_url, "cluster": True, "key_prefix": prefix},
    )
    every = range(1, 13)
    query = "{ " + " ".join(f"p{i}: product(id: {i}) {{ id }}" for i in every) + " }"
    calls = UpstreamCalls(cacheable_shop)
    with running_gateway(settings) as a, running_gateway(settings) as b:
        first, replica = GraphQLClient(a), GraphQLClient(b)
        calls.reset()
        answers = [first.data(query), replica.data(query)]  # a whole answer, shared
        made = calls.total()
        fewer = query.replace("p1: product(id: 1) { id }", "")  # another URL: items only
        answers.append(replica.data(fewer))
        after_items = calls.total()
        first.close()
        replica.close()
    calls.close()
    assert [len(a) for a in answers] == [12, 12, 11] and answers[0]["p7"] == {"id": "7"}
    assert (made, after_items) == (1, 1)
    client = redis.RedisCluster.from_url(cluster_url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match=f"{prefix}items:*", count=500))
        slots = {client.keyslot(k) for k in keys}
        nodes = {client.get_node_from_key(k).name for k in keys}
        assert len(keys) == 12 and len(slots) > 3 and len(nodes) > 1, (keys, nodes)
        assert list(client.scan_iter(match=f"{prefix}cache:*", count=500))
    finally:
        client.close()


def test_the_response_cache_reads_keys_of_many_slots_on_a_cluster(cluster_url: str) -> None:
    """A lookup reads an answer's shared key and its principal's (two slots), a batch of items
    many keys: each read is split by slot, none refused as CROSSSLOT and taken for a miss."""

    from bff.app import response_cache
    from bff.upstream.cache_store import CachedAnswer
    from bff.upstream.http11 import Headers
    from bff.upstream.request import build_request
    from bff.upstream.response import UpstreamResponse

    settings = settings_from_dict(
        {
            "cache": {"enabled": True, "store": "redis"},
            "redis": {"url": cluster_url, "cluster": True, "key_prefix": "bfftest:slots:"},
        }
    )

    async def scenario() -> tuple[list[str], list[CachedAnswer | None], list[int]]:
        shared = SharedState.from_settings(settings)
        results: list[str] = []
        cache = response_cache(settings, shared.redis, lambda _, result: results.append(result))
        assert cache is not None and shared.redis is not None
        requests = [
            build_request("GET", f"/products/{n}", headers={"X-User-Id": "1"}) for n in range(8)
        ]
        seen: list[int] = []
        try:
            for n, request in enumerate(requests):
                answer = UpstreamResponse(
                    200, b"%d" % n, Headers([(b"cache-control", b"max-age=60")]), "catalog"
                )
                keys = cache.keys("catalog", request)
                seen.append(
                    shared.redis.keyslot(keys[0]) if hasattr(shared.redis, "keyslot") else 0
                )
                await cache.store(keys, answer, None)
                _, result, _ = await cache.lookup("catalog", request)
                results.append(result)
            stored = await cache.entries.get_many([cache.keys("catalog", r)[0] for r in requests])
        finally:
            await shared.aclose()
        return results, stored, seen

    results, stored, slots = asyncio.run(scenario())
    assert results == ["hit"] * 8
    assert [a.body if a else None for a in stored] == [b"%d" % n for n in range(8)]
    assert len(set(slots)) > 3
