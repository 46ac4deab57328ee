"""The token store contract, against every backend: memory, the real Redis at REDIS_URL and the
real memcached at MEMCACHED_SERVER."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bff.auth.store import TokenStore, TokenStoreUnavailable
from bff.auth.store_memcached import MemcachedTokenStore
from bff.auth.store_memory import MemoryTokenStore
from bff.auth.store_redis import RedisTokenStore
from bff.shared_state import SharedState
from tests.auth_support import (
    MEMCACHED_SERVER,
    REDIS_URL,
    closed_port_url,
    redis_keys,
    redis_prefix,
)

__all__ = ["redis_prefix"]

Scenario = Callable[[TokenStore], Awaitable[None]]


def run(kind: str, prefix: str, scenario: Scenario) -> None:
    async def main() -> None:
        shared = SharedState.at(REDIS_URL, prefix)
        store: TokenStore = MemoryTokenStore()
        if kind == "redis":
            store = RedisTokenStore(shared.redis, shared.namespace("auth"))
        elif kind == "memcached":
            store = MemcachedTokenStore([MEMCACHED_SERVER], shared.namespace("auth"))
        try:
            await scenario(store)
        finally:
            await store.aclose()
            await shared.aclose()

    asyncio.run(main())


BACKENDS = pytest.mark.parametrize("kind", ["memory", "redis", "memcached"])


@BACKENDS
def test_put_get_delete(kind: str, redis_prefix: str) -> None:
    async def scenario(store: TokenStore) -> None:
        assert await store.get("rt:a") is None
        await store.put("rt:a", "one", 60)
        assert await store.get("rt:a") == "one"
        await store.delete("rt:a", "rt:missing")
        assert await store.get("rt:a") is None
        assert await store.ping()

    run(kind, redis_prefix, scenario)


@BACKENDS
def test_values_expire(kind: str, redis_prefix: str) -> None:
    async def scenario(store: TokenStore) -> None:
        await store.put("at:short", "x", 0.05)
        await store.put("at:long", "y", 60)
        deadline = time.monotonic() + 10
        while await store.get("at:short") is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await store.get("at:long") == "y"

    run(kind, redis_prefix, scenario)


@BACKENDS
def test_swap_replaces_only_an_existing_key_and_returns_the_old_value(
    kind: str, redis_prefix: str
) -> None:
    async def scenario(store: TokenStore) -> None:
        assert await store.swap("rt:none", "used") is None
        assert await store.get("rt:none") is None
        await store.put("rt:a", "grant", 60)
        results = await asyncio.gather(*(store.swap("rt:a", "used") for _ in range(8)))
        assert sorted(results, key=str) == ["grant"] + ["used"] * 7
        assert await store.get("rt:a") == "used"

    run(kind, redis_prefix, scenario)


@BACKENDS
def test_revoked_jtis_until_they_expire(kind: str, redis_prefix: str) -> None:
    async def scenario(store: TokenStore) -> None:
        now = time.time()
        await store.revoke_jti("alive", now + 300)
        await store.revoke_jti("dead", now - 1)
        assert await store.revoked_jtis(now) == {"alive": pytest.approx(now + 300)}

    run(kind, redis_prefix, scenario)


def test_redis_keys_are_namespaced_and_carry_ttls(redis_prefix: str) -> None:
    async def scenario(store: TokenStore) -> None:
        assert isinstance(store, RedisTokenStore)
        await store.put("rt:a", "x", 60)
        await store.revoke_jti("j", time.time() + 60)
        ttls: dict[str, Any] = {k: await store.redis.pttl(k) for k in redis_keys(redis_prefix)}
        assert set(ttls) == {redis_prefix + "auth:rt:a", redis_prefix + "auth:revoked-jti"}
        assert all(0 < ttl <= 62_000 for ttl in ttls.values()), ttls

    run("redis", redis_prefix, scenario)


def test_an_unreachable_redis_is_token_store_unavailable() -> None:
    async def main() -> None:
        shared = SharedState.at(closed_port_url())
        store = RedisTokenStore(shared.redis, "bfftest:down:")
        try:
            assert not await store.ping()
            for call in (
                store.get("rt:a"),
                store.put("rt:a", "x", 1),
                store.swap("rt:a", "y"),
                store.revoked_jtis(time.time()),
            ):
                with pytest.raises(TokenStoreUnavailable) as caught:
                    await call
                assert caught.value.status == 503
                assert caught.value.code == "UPSTREAM_UNAVAILABLE"
        finally:
            await shared.aclose()

    asyncio.run(main())
