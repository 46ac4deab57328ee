"""The `redis` token store: every replica sharing one Redis sees the same tokens.

It uses the app's one Redis client (`bff.shared_state`, which owns and closes it) under its
namespace (`bff:auth:`). Short timeouts and one immediate retry (a pooled connection may have
died with a Redis restart): when Redis is away, callers learn it in well under a second, as
`TokenStoreUnavailable`, and the next call after it comes back simply works. Revoked JWT ids
live in one sorted set scored by expiry, so a replica reads the whole current list in one
command and expired entries are trimmed as it goes; the set itself expires with its last entry.
Every command touches one key, or (a refresh's rotation) keys that share one hash tag, so all of
it runs on a Redis Cluster as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from bff.auth.store import USED, Rotation, TokenStore, TokenStoreUnavailable

T = TypeVar("T")

# KEYS[1]: the revoked set; ARGV: jti, its expiry (epoch seconds), the set's expiry. A fresh
# set gets a TTL and a later entry extends it, atomically with the entry.
REVOKE_LUA = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[3], 'NX')
redis.call('EXPIREAT', KEYS[1], ARGV[3], 'GT')
return 1
"""

# KEYS: the spent grant, the fresh one, the family record (one hash tag: one slot); ARGV: the
# used marker, the fresh grant, the family record expected and the one to write, the TTL (ms).
# Every check comes before the first write (a script stopped by an error keeps what it wrote),
# and the record already written means a retry of this very rotation (the first reply lost).
ROTATE_LUA = """
local family = redis.call('GET', KEYS[3])
if family == ARGV[4] then return 1 end
local spent = redis.call('GET', KEYS[1])
if family ~= ARGV[3] or not spent or spent == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[5])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return 1
"""


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if isinstance(value, str) else None


class RedisTokenStore(TokenStore):
    kind = "redis"

    def __init__(self, redis: Redis | RedisCluster, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._revoked_key = self.prefix + "revoked-jti"

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except (RedisError, OSError) as exc:
            raise TokenStoreUnavailable() from exc

    async def get(self, key: str) -> str | None:
        return _text(await self._call(lambda: self.redis.get(self.prefix + key)))

    async def put(self, key: str, value: str, ttl: float) -> None:
        ms = max(1, int(ttl * 1000))
        await self._call(lambda: self.redis.set(self.prefix + key, value, px=ms))

    async def delete(self, *keys: str) -> None:
        if keys:  # a cluster client splits the keys by slot
            await self._call(lambda: self.redis.delete(*(self.prefix + k for k in keys)))

    async def swap(self, key: str, value: str, ttl: float | None = None) -> str | None:
        """As `TokenStore.swap`; `ttl` (seconds) replaces the kept TTL when given."""
        expiry: dict[str, Any] = (
            {"keepttl": True} if ttl is None else {"px": max(1, int(ttl * 1000))}
        )
        old: Any = await self._call(
            lambda: self.redis.set(self.prefix + key, value, xx=True, get=True, **expiry)
        )
        return _text(old)

    async def rotate(self, rotation: Rotation) -> bool:
        """As `TokenStore.rotate`: one script, so Redis applies all of it or none of it."""
        r = rotation
        keys = [self.prefix + k for k in (r.spent, r.fresh, r.family)]
        ms = max(1, int(r.ttl * 1000))
        args: list[str | int] = [USED, r.grant, r.expected, r.record, ms]
        done: Any = await self._call(lambda: self.redis.eval(ROTATE_LUA, 3, *keys, *args))
        return bool(done)

    async def revoke_jti(self, jti: str, expires: float) -> None:
        at = int(expires) + 1
        await self._call(
            lambda: self.redis.eval(REVOKE_LUA, 1, self._revoked_key, jti, expires, at)
        )

    async def revoked_jtis(self, now: float) -> dict[str, float]:
        key = self._revoked_key

        async def run() -> Any:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, now, "+inf", withscores=True)
                return (await pipe.execute())[1]

        pairs = await self._call(run)
        return {_text(jti) or "": float(exp) for jti, exp in pairs}

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False
