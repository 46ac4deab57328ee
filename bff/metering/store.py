"""Where usage counters live: per-minute buckets of named counters.

A counter is named `kind␟client␟operation␟field␟measure` (`kind`: `op` for an operation,
`field` for a schema coordinate; `measure`: calls, errors, ms). Both stores keep the same
names, so the report reads either alike. Buckets expire after `RETENTION` seconds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Mapping

from redis.asyncio import Redis, RedisCluster

Counters = dict[str, float]
SEP = "\x1f"
BUCKET = 60  # seconds per bucket
RETENTION = 8 * 24 * 3600  # a week of history, and a day to spare
MAX_WINDOW = 7 * 24 * 3600


def counter_name(kind: str, client: str, operation: str, field: str, measure: str) -> str:
    return SEP.join((kind, client.replace(SEP, " "), operation, field, measure))


def split_name(name: str) -> tuple[str, str, str, str, str]:
    kind, client, operation, field, measure = name.split(SEP)
    return kind, client, operation, field, measure


class UsageStore(ABC):
    @abstractmethod
    async def add(self, buckets: Mapping[int, Mapping[str, float]]) -> None:
        """Add counters, by bucket (epoch seconds // BUCKET)."""

    @abstractmethod
    async def read(self, first: int, last: int) -> Counters:
        """The counters of buckets `first`..`last` added up."""

    async def aclose(self) -> None:
        return None


class MemoryUsageStore(UsageStore):
    """One process's counters (the demo, tests, a single gateway without Redis)."""

    def __init__(self) -> None:
        self.buckets: dict[int, Counters] = {}

    async def add(self, buckets: Mapping[int, Mapping[str, float]]) -> None:
        for bucket, counters in buckets.items():
            mine = self.buckets.setdefault(bucket, defaultdict(float))
            for name, value in counters.items():
                mine[name] += value
        if self.buckets:
            oldest = max(self.buckets) - RETENTION // BUCKET
            for bucket in [b for b in self.buckets if b < oldest]:
                del self.buckets[bucket]

    async def read(self, first: int, last: int) -> Counters:
        total: Counters = defaultdict(float)
        for bucket, counters in self.buckets.items():
            if first <= bucket <= last:
                for name, value in counters.items():
                    total[name] += value
        return total


class RedisUsageStore(UsageStore):
    """Counters in Redis hashes (`{prefix}<bucket>`, `bff:usage:29012345`), shared by every
    replica. The client belongs to the app's shared state, which closes it."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, bucket: int) -> str:
        return f"{self.prefix}{bucket}"

    async def add(self, buckets: Mapping[int, Mapping[str, float]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket, counters in buckets.items():
                key = self.key(bucket)
                for name, value in counters.items():
                    if name.endswith("ms"):
                        pipe.hincrbyfloat(key, name, value)
                    else:
                        pipe.hincrby(key, name, int(value))
                pipe.expire(key, RETENTION)
            await pipe.execute()

    async def read(self, first: int, last: int) -> Counters:
        total: Counters = defaultdict(float)
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket in range(first, last + 1):
                pipe.hgetall(self.key(bucket))
            hashes = await pipe.execute()
        for counters in hashes:
            for name, value in counters.items():
                total[name.decode() if isinstance(name, bytes) else name] += float(value)
        return total
