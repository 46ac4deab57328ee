"""Where shared state lives (SPEC section 10): Redis when `redis.url` is configured, else memory.

"Configured" means written in the file or the environment: `redis.url` has a default, and a
gateway that nobody told about a Redis must not go looking for one. Rate limits and persisted
queries use a client made here, and so does the Redis token store (a pool of connections with
short timeouts: a Redis that stops answering must cost a request milliseconds, not seconds).
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bff.config import Settings

POOL_SIZE = 64
TIMEOUT = 0.5  # seconds for connect, each command, and waiting for a pooled connection


def redis_url(settings: Settings) -> str | None:
    """`redis.url` when the config names a Redis, else `None` (memory)."""
    if "redis" in settings.model_fields_set and "url" in settings.redis.model_fields_set:
        return settings.redis.url
    return None


def connect_redis(
    url: str,
    *,
    command_timeout: float = TIMEOUT,
    decode_responses: bool = False,
    retries: int = 0,
) -> Redis:
    """A client with its own pool; connections are opened on first use, in the serving loop.
    `retries` immediate retries of a command whose pooled connection died (a Redis restart)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=command_timeout,
        socket_timeout=command_timeout,
        socket_connect_timeout=TIMEOUT,
        decode_responses=decode_responses,
        retry=Retry(NoBackoff(), retries) if retries else None,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
