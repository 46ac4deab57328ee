"""Where shared state lives (SPEC section 10): Redis when `redis.url` is configured, else memory.

"Configured" means written in the file or the environment: `redis.url` has a default, and a
gateway that nobody told about a Redis must not go looking for one. Rate limits and persisted
queries use the one client made here (a pool of connections with short timeouts: a Redis that
stops answering must cost a request milliseconds, not seconds).
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from bff.config import Settings

POOL_SIZE = 64
TIMEOUT = 0.5  # seconds for connect, each command, and waiting for a pooled connection


def redis_url(settings: Settings) -> str | None:
    """`redis.url` when the config names a Redis, else `None` (memory)."""
    if "redis" in settings.model_fields_set and "url" in settings.redis.model_fields_set:
        return settings.redis.url
    return None


def connect_redis(url: str) -> Redis:
    """A client with its own pool; connections are opened on first use, in the serving loop."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
