"""The one owner of shared state (SPEC sections 10 and 11): the gateway's Redis connection.

`SharedState.from_settings` is called once, by the app factory (and by the commands that read
the same Redis). It alone decides whether Redis is configured: the `redis` section names where
it is (`url`, written in the file or the environment, or `sentinel`), or the token store is
Redis (`auth.store: redis`, at the default URL if none is written). A gateway that nobody told
about a Redis must not go looking for one. Then the token store, revocations, rate limits, APQ
and metering all use Redis, each under its own namespace of `redis.key_prefix`; otherwise memory.

One client library (redis-py) and one client: a bounded pool of connections to one server, a
cluster client with a pool per node (`redis.cluster`), or the Sentinel-managed master
(`redis.sentinel`). Short timeouts: a Redis that stops answering must cost a request
milliseconds, not seconds; one immediate retry covers a pooled connection that died with a
Redis restart. The stores name the keys that a script touches together with one hash tag
(`{...}`, see `tag`), so their scripts run on a cluster too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bff.config import RedisConfig, Settings

POOL_SIZE = 64  # connections (a cluster: per node)
TIMEOUT = 0.5  # seconds for connect, each command, and waiting for a pooled connection
RETRIES = 1  # immediate retries of a command whose pooled connection died

Client = Redis | RedisCluster
"""What the stores are handed: both speak the same commands; a cluster routes them by slot."""


def configured(settings: Settings) -> bool:
    """Whether this gateway keeps its shared state in Redis (the one rule, see the module)."""
    return settings.redis_configured


def tag(text: str) -> str:
    """`text` as a Redis Cluster hash tag: keys that share it live in one slot."""
    return "{" + text + "}"


# Keys read at once above which a cluster read is one GET per key in a pipeline rather than
# one MGET per slot: with keys in as many slots as keys, grouping them costs more than it saves
# (measured on three masters: 40 keys 1.6 ms as GETs, 2.5 ms by `mget_nonatomic`; 2 keys
# 0.6 ms and 0.4 ms). On one server MGET wins at every size (40 keys: 0.7 ms, GETs 1.8 ms).
CLUSTER_MGET_KEYS = 8


async def get_many(client: Client, keys: Sequence[str]) -> list[Any]:
    """The values of `keys` (None: absent), in their order. One MGET on a single server; on a
    cluster, where an MGET across slots is refused (CROSSSLOT), one MGET per slot
    (`mget_nonatomic`) for a few keys, a pipeline of GETs (each sent to its node) for many.
    Not atomic across slots: the caches need no snapshot."""
    if not isinstance(client, RedisCluster):
        return list(await client.mget(list(keys)))
    if len(keys) <= CLUSTER_MGET_KEYS:
        return list(await client.mget_nonatomic(list(keys)))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return list(await pipe.execute())


async def put_many(client: Client, entries: Sequence[tuple[str, bytes, int]]) -> None:
    """`SET key value PX ms` for each of `entries`, in one pipeline without a transaction
    (a cluster pipeline sends each node its own keys)."""
    pipe = client.pipeline(transaction=False)
    for key, value, keep_ms in entries:
        pipe.set(key, value, px=keep_ms)
    await pipe.execute()


def client_options(config: RedisConfig) -> dict[str, Any]:
    """Connection options of `config` beyond its URL: timeouts, ACL user, TLS files."""
    options: dict[str, Any] = {
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
        "retry": Retry(NoBackoff(), RETRIES),
    }
    if config.username is not None:
        options["username"] = config.username
    if config.password is not None:
        options["password"] = config.password.get_secret_value()
    tls = config.tls
    if tls is not None:
        for option, path in (
            ("ssl_ca_certs", tls.ca_file),
            ("ssl_certfile", tls.cert_file),
            ("ssl_keyfile", tls.key_file),
        ):
            if path is not None:
                options[option] = str(path)
    return options


def connect(config: RedisConfig) -> Client:
    """The client `config` describes; connections open on first use, in the serving loop."""
    options = client_options(config)
    if config.sentinel is not None:
        return sentinel_master(config, options)
    # The URL's parts, then the config's keys over them (redis-py's from_url does the reverse).
    merged = {**parse_url(config.url), **options}
    if config.cluster:
        if merged.pop("connection_class", None) is SSLConnection:
            merged["ssl"] = True
        return RedisCluster(max_connections=POOL_SIZE, **merged)
    pool = BlockingConnectionPool(max_connections=POOL_SIZE, timeout=TIMEOUT, **merged)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


def sentinel_master(config: RedisConfig, options: dict[str, Any]) -> Redis:
    """The master `redis.sentinel` names, found (again after a failover) through the sentinels.

    The URL gives the master's user, password, database and TLS; the sentinels are asked
    without them (a sentinel has no databases, and its own password is rarely the master's)."""
    assert config.sentinel is not None
    parts = urlsplit(config.url)
    master = dict(options)
    if parts.username and "username" not in master:
        master["username"] = unquote(parts.username)
    if parts.password and "password" not in master:
        master["password"] = unquote(parts.password)
    database = parts.path.strip("/")
    if database.isdigit():
        master["db"] = int(database)
    if parts.scheme == "rediss":
        master["ssl"] = True
    nodes = [node.rsplit(":", 1) for node in config.sentinel.nodes]
    sentinels = [(host.strip("[]"), int(port)) for host, port in nodes]
    watcher = Sentinel(
        sentinels,
        sentinel_kwargs={"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT},
        **master,
    )
    client: Redis = watcher.master_for(config.sentinel.master, max_connections=POOL_SIZE)
    return client


@dataclass(slots=True)
class SharedState:
    """The Redis client (None: memory) and the key prefix every store's namespace starts with."""

    redis: Client | None
    prefix: str = "bff:"

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedState:
        redis = connect(settings.redis) if configured(settings) else None
        return cls(redis, settings.redis.key_prefix)

    @classmethod
    def at(cls, url: str, prefix: str = "bff:") -> SharedState:
        """The shared state of a gateway configured with just `redis.url` (commands, tests)."""
        return cls.from_settings(
            Settings.model_validate({"redis": {"url": url, "key_prefix": prefix}})
        )

    @property
    def cluster(self) -> bool:
        return isinstance(self.redis, RedisCluster)

    def namespace(self, store: str) -> str:
        """The prefix of `store`'s keys (`bff:rl:`): stores of two prefixes share nothing."""
        return f"{self.prefix}{store}:"

    async def ping(self) -> bool:
        """True when Redis answers (for `/readyz`); False when it does not or is not used."""
        if self.redis is None:
            return False
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        """Close every connection; after the stores' last writes (metering's final flush)."""
        if self.redis is None:
            return
        pool = getattr(self.redis, "connection_pool", None)
        await self.redis.aclose()
        if isinstance(pool, SentinelConnectionPool):  # and the connections to the sentinels
            for sentinel in pool.sentinel_manager.sentinels:
                await sentinel.aclose()


__all__ = ["Client", "SharedState", "configured", "connect", "get_many", "put_many", "tag"]
