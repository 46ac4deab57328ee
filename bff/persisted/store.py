"""Where persisted documents live: by sha256 hash, in memory or in Redis shared by replicas.

Two kinds of entries: *persisted* (from `bff persist DIR`: the allow-list of persisted-only
mode, kept until removed) and *APQ* registrations (any client's, expiring after
`persisted_queries.apq_ttl`). Both are content-addressed: a hash always names the same
document, so every replica may cache what it has seen. In Redis, a hash's two entries share
its hash tag (`bff:pq:apq:{<sha256>}`), so one MGET reads both on a Redis Cluster too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError


class DocumentStoreUnavailable(Exception):
    """The shared store could not answer."""


class DocumentStore(ABC):
    @abstractmethod
    async def get(self, sha256: str, *, apq: bool) -> str | None:
        """The document of `sha256` among persisted ones (and APQ ones when `apq`)."""

    @abstractmethod
    async def register_apq(self, sha256: str, document: str, ttl: float) -> None: ...

    @abstractmethod
    async def persist(self, documents: dict[str, str]) -> None:
        """Add `documents` (hash -> text) to the persisted allow-list."""


class MemoryDocumentStore(DocumentStore):
    """This process's documents; APQ registrations do not expire (the local cache bounds use)."""

    def __init__(self) -> None:
        self.persisted: dict[str, str] = {}
        self.apq: dict[str, str] = {}

    async def get(self, sha256: str, *, apq: bool) -> str | None:
        found = self.persisted.get(sha256)
        if found is None and apq:
            found = self.apq.get(sha256)
        return found

    async def register_apq(self, sha256: str, document: str, ttl: float) -> None:
        if len(self.apq) >= 10_000:
            self.apq.clear()  # a crude bound: a client can always register again
        self.apq[sha256] = document

    async def persist(self, documents: dict[str, str]) -> None:
        self.persisted.update(documents)


class RedisDocumentStore(DocumentStore):
    """Documents shared by every replica; `prefix` is this gateway's namespace (`bff:pq:`)."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def persisted_key(self, sha256: str) -> str:
        return f"{self.prefix}persisted:{{{sha256}}}"

    def apq_key(self, sha256: str) -> str:
        return f"{self.prefix}apq:{{{sha256}}}"

    async def get(self, sha256: str, *, apq: bool) -> str | None:
        try:
            if apq:
                keys = (self.persisted_key(sha256), self.apq_key(sha256))
                values = await self.redis.mget(*keys)
                found = next((v for v in values if v is not None), None)
            else:
                found = await self.redis.get(self.persisted_key(sha256))
        except (RedisError, OSError) as error:
            raise DocumentStoreUnavailable(str(error)) from error
        return found.decode("utf-8") if isinstance(found, bytes) else found

    async def register_apq(self, sha256: str, document: str, ttl: float) -> None:
        try:
            await self.redis.set(self.apq_key(sha256), document, ex=max(1, int(ttl)))
        except (RedisError, OSError) as error:
            raise DocumentStoreUnavailable(str(error)) from error

    async def persist(self, documents: dict[str, str]) -> None:
        if not documents:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sha256, document in documents.items():
                    pipe.set(self.persisted_key(sha256), document)
                await pipe.execute()
        except (RedisError, OSError) as error:
            raise DocumentStoreUnavailable(str(error)) from error
