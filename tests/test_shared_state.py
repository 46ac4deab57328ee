"""One owner of shared state (SPEC sections 10 and 11): which config means Redis, the client it
makes for each deployment shape, the config errors, and two gateways on one Redis under two
key prefixes sharing nothing: no rate-limit budget, no usage counter, no persisted query, no
token. The gateways are real servers; Redis is the real one at REDIS_URL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from bff.config import ConfigError, Settings, load_settings, settings_from_dict
from bff.metering import RedisUsageStore, usage_report
from bff.persisted.documents import sha256_hex
from bff.shared_state import SharedState, configured
from bff.telemetry.hub import schema_fields
from schema import schema
from services import RunningServices
from tests.auth_support import REDIS_URL
from tests.support import AUDIENCE, ISSUER, SECRET, running_gateway
from tests.test_token_endpoints import Gateway

GQL = {"Accept": "application/graphql-response+json"}
PATIENCE = 10.0  # seconds; metering flushes once a second


def config_errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data)
    return info.value.errors


# --- the one rule: is Redis configured? ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "env", "expected"),
    [
        ({}, {}, False),
        ({"redis": {"key_prefix": "x:"}}, {}, False),  # a prefix says nothing of where
        ({"redis": {"url": "redis://10.0.0.1:6379/0"}}, {}, True),
        ({}, {"BFF_REDIS__URL": "redis://10.0.0.1:6379/0"}, True),
        ({"redis": {"sentinel": {"master": "m", "nodes": ["10.0.0.1:26379"]}}}, {}, True),
        ({"auth": {"store": "redis"}}, {}, True),  # the token store names Redis too
        ({"auth": {"store": "memcached"}}, {}, False),
    ],
)
def test_redis_is_configured_by_one_rule(
    tmp_path: Path, data: dict[str, Any], env: dict[str, str], expected: bool
) -> None:
    import yaml

    path = tmp_path / "bff.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = load_settings(path, env)
    assert configured(settings) is expected
    shared = SharedState.from_settings(settings)
    assert (shared.redis is not None) is expected


def test_each_store_gets_a_namespace_of_the_prefix() -> None:
    shared = SharedState(None, "tenant-a:")
    assert [shared.namespace(s) for s in ("auth", "rl", "pq", "usage")] == [
        "tenant-a:auth:",
        "tenant-a:rl:",
        "tenant-a:pq:",
        "tenant-a:usage:",
    ]


# --- the client for each deployment shape --------------------------------------------------


def test_a_plain_url_gives_one_bounded_pool_with_the_acl_user_of_the_config() -> None:
    settings = settings_from_dict(
        {"redis": {"url": "redis://u:p@10.0.0.1:6380/3", "username": "bff", "password": "pw"}}
    )
    shared = SharedState.from_settings(settings)
    assert isinstance(shared.redis, Redis) and not shared.cluster
    options = shared.redis.connection_pool.connection_kwargs
    assert (options["host"], options["port"], options["db"]) == ("10.0.0.1", 6380, 3)
    assert (options["username"], options["password"]) == ("bff", "pw")  # config wins
    assert options["socket_timeout"] == 0.5
    assert shared.redis.connection_pool.max_connections == 64


def test_rediss_with_tls_files_carries_them_to_every_connection(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    tls = {
        "ca_file": str(tmp_path / "ca.pem"),
        "cert_file": str(tmp_path / "client.pem"),
        "key_file": str(tmp_path / "client.key"),
    }
    settings = settings_from_dict({"redis": {"url": "rediss://10.0.0.1:6380/0", "tls": tls}})
    shared = SharedState.from_settings(settings)
    assert isinstance(shared.redis, Redis)
    pool = shared.redis.connection_pool
    assert pool.connection_class.__name__ == "SSLConnection"
    options = pool.connection_kwargs
    assert options["ssl_ca_certs"] == tls["ca_file"]
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == (tls["cert_file"], tls["key_file"])


def test_cluster_true_gives_a_cluster_client() -> None:
    settings = settings_from_dict({"redis": {"url": "redis://10.0.0.1:7000", "cluster": True}})
    shared = SharedState.from_settings(settings)
    assert isinstance(shared.redis, RedisCluster) and shared.cluster


def test_sentinel_asks_the_sentinels_for_the_master_with_the_urls_credentials() -> None:
    settings = settings_from_dict(
        {
            "redis": {
                "url": "redis://bff:secret@ignored:1/2",
                "sentinel": {"master": "shop", "nodes": ["10.0.0.1:26379", "[::1]:26380"]},
            }
        }
    )
    shared = SharedState.from_settings(settings)
    assert isinstance(shared.redis, Redis)
    pool = shared.redis.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "shop"
    sentinels = pool.sentinel_manager.sentinels
    addresses = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in sentinels
    ]
    assert addresses == [("10.0.0.1", 26379), ("::1", 26380)]
    options = pool.connection_kwargs
    assert (options["username"], options["password"], options["db"]) == ("bff", "secret", 2)
    # the sentinels themselves are asked without the master's password
    assert sentinels[0].connection_pool.connection_kwargs.get("password") is None


def test_the_password_never_renders(tmp_path: Path) -> None:
    settings = settings_from_dict({"redis": {"password": "hunter2-planted", "username": "bff"}})
    assert "hunter2-planted" not in repr(settings)
    assert "hunter2-planted" not in str(settings.redis)


@pytest.mark.parametrize(
    ("redis_section", "error"),
    [
        (
            {"url": "redis://h:1/0", "tls": {}},
            "redis.tls: needs a rediss:// url (TLS)",
        ),
        (
            {"url": "rediss://h:1/0", "tls": {"ca_file": "/nonexistent/ca.pem"}},
            "redis.tls.ca_file: no such file",
        ),
        (
            {"cluster": True, "sentinel": {"master": "m", "nodes": ["h:1"]}},
            "redis.sentinel: cannot be combined with cluster: true",
        ),
        ({"url": "redis://h:1/3", "cluster": True}, "redis.url: a Redis Cluster has database 0"),
        ({"key_prefix": "{bff}:"}, "redis.key_prefix: must not contain { or }"),
        (
            {"sentinel": {"master": "m", "nodes": ["nohost"]}},
            "redis.sentinel.nodes[0]: not host:port",
        ),
        ({"sentinel": {"master": "m", "nodes": []}}, "redis.sentinel.nodes"),
    ],
)
def test_config_errors_name_the_key(redis_section: dict[str, Any], error: str) -> None:
    errors = config_errors({"redis": redis_section})
    assert any(e.startswith(error) for e in errors), errors


# --- two prefixes on one Redis share nothing ----------------------------------------------


@pytest.fixture
def two_prefixes() -> Iterator[tuple[str, str]]:
    prefixes = (f"bfftest:{uuid.uuid4().hex}:a:", f"bfftest:{uuid.uuid4().hex}:b:")
    yield prefixes
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=prefix + "*", count=500))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def tenant(shop: RunningServices, prefix: str) -> Settings:
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
            "redis": {"url": REDIS_URL, "key_prefix": prefix},
            "rate_limits": {"default": {"requests": 3, "per": "1m"}},
        }
    )


def namespaces(prefix: str) -> set[str]:
    """The stores that wrote keys under `prefix` (`auth`, `rl`, `pq`, `usage`)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = client.scan_iter(match=prefix + "*", count=500)
        return {key[len(prefix) :].split(":", 1)[0] for key in keys}
    finally:
        client.close()


def operations(prefix: str) -> set[str]:
    """The operations metered under `prefix`."""

    async def read() -> set[str]:
        shared = SharedState.at(REDIS_URL, prefix)
        assert shared.redis is not None
        store = RedisUsageStore(shared.redis, shared.namespace("usage"))
        try:
            report = await usage_report(store, schema_fields(schema._schema))
        finally:
            await shared.aclose()
        return {str(op["operation"]) for op in report.as_json()["operations"]}

    return asyncio.run(read())


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_two_gateways_with_two_prefixes_on_one_redis_share_nothing(
    shop: RunningServices, two_prefixes: tuple[str, str]
) -> None:
    prefix_a, prefix_b = two_prefixes
    query = f"query OnlyA {{ product(id: 1) {{ id }} }} # {uuid.uuid4().hex}"
    apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}
    with ExitStack() as stack:
        a = Gateway(stack.enter_context(running_gateway(tenant(shop, prefix_a))))
        b = Gateway(stack.enter_context(running_gateway(tenant(shop, prefix_b))))
        stack.callback(a.close)
        stack.callback(b.close)
        token = a.login()["access_token"]  # opaque: its claims live in a's token store
        bearer = {**GQL, "Authorization": f"Bearer {token}"}
        assert a.me(token).status_code == 200  # user 2's budget on a: 1 of 3
        assert b.me(token).status_code == 401  # b's token store has never heard of it
        # a persisted query registered through a is unknown to b
        body = {"query": query, "extensions": apq}
        assert a.http.post("/graphql", json=body, headers=bearer).status_code == 200  # 2 of 3
        unknown = b.http.post("/graphql", json={"extensions": apq}, headers=GQL).json()
        assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert a.http.post("/graphql", json={"extensions": apq}, headers=bearer).is_success
        assert a.me(token).status_code == 429  # a's budget for user 2 is spent...
        own = b.login()["access_token"]
        assert b.me(own).status_code == 200  # ...and b's, for the same user, is whole
        assert b.gql.post("query OnlyB { __typename }", token=own).status_code == 200
        assert eventually(lambda: {"OnlyA"} <= operations(prefix_a))
        assert eventually(lambda: {"OnlyB"} <= operations(prefix_b))
    assert "OnlyB" not in operations(prefix_a)  # usage counted apart
    assert "OnlyA" not in operations(prefix_b)
    assert namespaces(prefix_a) == {"auth", "rl", "pq", "usage"}  # every store, a's prefix
    assert "pq" not in namespaces(prefix_b)  # b registered nothing


def test_readiness_follows_the_shared_client(shop: RunningServices) -> None:
    """With opaque tokens in Redis, `/readyz` is the shared client's PING."""
    settings = tenant(shop, f"bfftest:{uuid.uuid4().hex}:")
    with running_gateway(settings) as url:
        answer = httpx.get(f"{url}/readyz", trust_env=False, timeout=10)
    assert answer.status_code == 200, answer.text


def test_the_app_makes_one_client_and_every_store_uses_it(shop: RunningServices) -> None:
    from starlette.routing import Route

    from bff.app import create_app

    app = create_app(tenant(shop, "tenant-one:"))
    shared = app.state.shared
    assert isinstance(shared.redis, Redis)
    graphql = next(r for r in app.routes if isinstance(r, Route) and r.path == "/graphql")
    stores = {
        "auth": app.state.auth.store,
        "rl": app.state.limiter.store,
        "pq": graphql.endpoint.__self__.persisted.store,
        "usage": app.state.telemetry.meter.store,
    }
    for namespace, store in stores.items():
        assert store.redis is shared.redis, namespace  # one client, one pool
        assert store.prefix == f"tenant-one:{namespace}:", namespace


def test_tls_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "bff.yaml"
    path.write_text("redis:\n  url: rediss://10.0.0.1:6380/0\n  tls: {ca_file: certs/ca.pem}\n")
    settings = load_settings(path, {})
    assert settings.redis.tls is not None
    assert settings.redis.tls.ca_file == tmp_path / "certs" / "ca.pem"
