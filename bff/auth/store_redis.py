"""The `redis` token store: every replica sharing one Redis sees the same tokens.

redis-py's asyncio client over a bounded, blocking connection pool. Short timeouts and a
single immediate retry (a pooled connection may have died with a Redis restart): when Redis
is away, callers learn it in well under a second, as `TokenStoreUnavailable`, and the next
call after it comes back simply works. Revoked JWT ids live in one sorted set scored by
expiry, so a replica reads the whole current list in one command and expired entries are
trimmed as it goes; the set itself expires with its last entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bff.auth.store import TokenStore, TokenStoreUnavailable
from bff.shared_state import connect_redis

T = TypeVar("T")

COMMAND_TIMEOUT = 1.0


class RedisTokenStore(TokenStore):
    kind = "redis"

    def __init__(self, url: str, prefix: str = "bff:") -> None:
        self.prefix = prefix + "auth:"
        self._revoked_key = self.prefix + "revoked-jti"
        self.redis: Redis = connect_redis(
            url, command_timeout=COMMAND_TIMEOUT, decode_responses=True, retries=1
        )

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except (RedisError, OSError) as exc:
            raise TokenStoreUnavailable() from exc

    async def get(self, key: str) -> str | None:
        value: Any = await self._call(lambda: self.redis.get(self.prefix + key))
        return value if isinstance(value, str) else None

    async def put(self, key: str, value: str, ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        await self._call(lambda: self.redis.set(self.prefix + key, value, px=ms))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._call(lambda: self.redis.delete(*(self.prefix + k for k in keys)))

    async def swap(self, key: str, value: str, ttl: float | None = None) -> str | None:
        expiry: dict[str, Any] = (
            {"keepttl": True} if ttl is None else {"px": max(1, int(ttl * 1000))}
        )
        old: Any = await self._call(
            lambda: self.redis.set(self.prefix + key, value, xx=True, get=True, **expiry)
        )
        return old if isinstance(old, str) else None

    async def revoke_jti(self, jti: str, expires: float) -> None:
        key, at = self._revoked_key, int(expires) + 1

        async def run() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {jti: expires})
                pipe.expireat(key, at, nx=True)  # a fresh set gets a TTL...
                pipe.expireat(key, at, gt=True)  # ...and a later entry extends it
                await pipe.execute()

        await self._call(run)

    async def revoked_jtis(self, now: float) -> dict[str, float]:
        key = self._revoked_key

        async def run() -> Any:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, now, "+inf", withscores=True)
                return (await pipe.execute())[1]

        pairs = await self._call(run)
        return {str(jti): float(exp) for jti, exp in pairs}

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        await self.redis.aclose(close_connection_pool=True)
