"""Where cached upstream answers live: this process's memory, or Redis shared by replicas.

Both stores hold `CachedAnswer`s under string keys for a given time. The memory store is a
bounded LRU (`max_entries`); the Redis store keeps each entry as msgpack with an expiry, so
every replica reads what any one stored. A Redis that does not answer is a miss, never a
failed request: the cache only ever saves work.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import msgspec

log = logging.getLogger("bff.cache")


class CachedAnswer(msgspec.Struct, array_like=True, frozen=True):
    """An upstream answer as stored: `stored` is wall-clock time (replicas compare it)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    stored: float
    fresh: float  # seconds of freshness for the gateway from `stored`
    stale: float  # seconds past that it may be served while it is revalidated


class CacheStore(Protocol):
    async def get_many(self, keys: Sequence[str]) -> list[CachedAnswer | None]: ...

    async def put(self, key: str, answer: CachedAnswer, keep: float) -> None: ...


class MemoryCacheStore:
    """A least-recently-used map of at most `max_entries`, each dropped after its `keep`."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get_many(self, keys: Sequence[str]) -> list[CachedAnswer | None]:
        now = self.clock()
        found: list[CachedAnswer | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry[0] <= now:
                del self._entries[key]
                entry = None
            if entry is not None:
                self._entries.move_to_end(key)
            found.append(None if entry is None else entry[1])
        return found

    async def put(self, key: str, answer: CachedAnswer, keep: float) -> None:
        entries = self._entries
        entries[key] = (self.clock() + keep, answer)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CachedAnswer)

GetMany = Callable[[Sequence[str]], Awaitable[Sequence[bytes | str | None]]]
PutOne = Callable[[str, bytes, int], Awaitable[object]]  # key, value, milliseconds to keep


class RedisCacheStore:
    """Entries in Redis (`get_many`: MGET, split by slot on a cluster; `put`: SET with PX),
    injected by the app."""

    def __init__(self, get_many: GetMany, put: PutOne) -> None:
        self._get_many = get_many
        self._put = put

    async def get_many(self, keys: Sequence[str]) -> list[CachedAnswer | None]:
        try:
            values = await self._get_many(keys)
        except Exception as error:  # a cache that does not answer is a miss
            log.warning("response cache: Redis read failed (%s)", type(error).__name__)
            return [None] * len(keys)
        found: list[CachedAnswer | None] = []
        for value in values:
            try:
                if isinstance(value, str):  # a client that decodes answers
                    value = value.encode("latin-1")
                found.append(None if value is None else _DECODER.decode(value))
            except msgspec.DecodeError:
                found.append(None)  # another version's entry: a miss, overwritten soon
        return found

    async def put(self, key: str, answer: CachedAnswer, keep: float) -> None:
        try:
            await self._put(key, _ENCODER.encode(answer), max(1, int(keep * 1000)))
        except Exception as error:
            log.warning("response cache: Redis write failed (%s)", type(error).__name__)
