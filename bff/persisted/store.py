"""Where persisted documents live: by sha256 hash, in memory or in Redis shared by replicas.

Two kinds of entries: *persisted* (from `bff persist DIR`: the allow-list of persisted-only
mode, kept until removed) and *APQ* registrations (any client's, expiring after
`persisted_queries.apq_ttl`). Both are content-addressed: a hash always names the same
document, so every replica may cache what it has seen.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from redis.asyncio import Redis
from redis.exceptions import RedisError

PERSISTED_PREFIX = "bff:pq:persisted:"
APQ_PREFIX = "bff:pq:apq:"


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
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, sha256: str, *, apq: bool) -> str | None:
        try:
            if apq:
                values = await self.redis.mget(PERSISTED_PREFIX + sha256, APQ_PREFIX + sha256)
                found = next((v for v in values if v is not None), None)
            else:
                found = await self.redis.get(PERSISTED_PREFIX + sha256)
        except (RedisError, OSError, TimeoutError) as error:
            raise DocumentStoreUnavailable(str(error)) from error
        return found.decode("utf-8") if isinstance(found, bytes) else found

    async def register_apq(self, sha256: str, document: str, ttl: float) -> None:
        try:
            await self.redis.set(APQ_PREFIX + sha256, document, ex=max(1, int(ttl)))
        except (RedisError, OSError, TimeoutError) as error:
            raise DocumentStoreUnavailable(str(error)) from error

    async def persist(self, documents: dict[str, str]) -> None:
        if not documents:
            return
        try:
            await self.redis.mset({PERSISTED_PREFIX + h: d for h, d in documents.items()})
        except (RedisError, OSError, TimeoutError) as error:
            raise DocumentStoreUnavailable(str(error)) from error
