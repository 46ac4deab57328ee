"""Where rate-limit state lives: in this process, or in Redis shared by every replica.

Both stores answer `hit(key, rule)` with (allowed, microseconds to wait, TAT minus now), the
GCRA step of `bff.limits.gcra`. The Redis store runs that step as one Lua script (one round
trip, atomic, on Redis's own clock so replicas with skewed clocks still agree) through
EVALSHA, loading the script again if the server lost it. The hits of one turn of the event
loop share one script call: that batching is what makes a Redis budget cheap under load.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisError, ResponseError

from bff.limits.gcra import MICROS, Rule, decide

MEMORY_SWEEP_AT = 100_000  # entries before the memory store drops the ones already expired


class StoreUnavailable(Exception):
    """The shared store could not answer (connection refused, timeout, error reply)."""


class RateStore(ABC):
    @abstractmethod
    async def hit(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        """Count one request of `key` under `rule`: (allowed, wait_us, backlog_us)."""


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryRateStore(RateStore):
    """One process's budgets (a single gateway, the demo, tests); `clock` in microseconds."""

    def __init__(self, clock: Callable[[], int] = monotonic_us) -> None:
        self.clock = clock
        self.tats: dict[str, int] = {}
        self.sweep_at = MEMORY_SWEEP_AT

    def hit_now(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        now = self.clock()
        allowed, tat, wait = decide(self.tats.get(key), now, rule.interval_us, rule.period_us)
        if allowed:
            if len(self.tats) >= self.sweep_at and key not in self.tats:
                self.sweep(now)
            self.tats[key] = tat
        return allowed, wait, tat - now

    def sweep(self, now: int) -> None:
        """Forget clients whose budget is full again: they look exactly like new ones.

        The next sweep waits until the store has doubled over what is still live, so a flood
        of live clients costs amortized O(1) per new client, not a full sweep each."""
        self.tats = {k: t for k, t in self.tats.items() if t > now}
        self.sweep_at = max(MEMORY_SWEEP_AT, 2 * len(self.tats))

    async def hit(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        return self.hit_now(key, rule)


# KEYS[i]: a client's TAT; ARGV[2i-1], ARGV[2i]: its interval_us and period_us. Returns
# {allowed, wait_us, backlog_us} for each key in turn, in one flat list. The same key may come
# twice in one call (two requests of one client in one batch): each sees the other's write.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key))
  if tat == nil or tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - period
  if now < allow_at then
    out[#out + 1] = 0
    out[#out + 1] = allow_at - now
    out[#out + 1] = tat - now
  else
    redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = new_tat - now
  end
end
return out
"""


class RedisRateStore(RateStore):
    """Budgets shared by every gateway using the same Redis (`bff.shared_state`'s client).

    The hits made in one turn of the event loop go to Redis together, as one EVALSHA of the
    script over all their keys (one command, one round trip, one task): under load several
    requests share it, so per request the client library's cost is divided among them.
    A client's key is its own hash tag (`bff:rl:{user:1}`): on a Redis Cluster the batch is
    split by slot, one EVALSHA per slot, all in one pipeline (a round trip per node).
    """

    def __init__(self, redis: Redis | RedisCluster, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.cluster = isinstance(redis, RedisCluster)
        self.sha = hashlib.sha1(GCRA_LUA.encode()).hexdigest()
        self._pending: list[_Hit] = []
        self._sending: set[asyncio.Task[None]] = set()

    def key(self, client: str) -> str:
        return self.prefix + "{" + client + "}"

    async def hit(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((self.key(key), rule.interval_us, rule.period_us, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)  # after every hit of this turn of the loop is queued
        allowed, wait, backlog = await future
        return bool(allowed), int(wait), int(backlog)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # a reference until it is done (the loop keeps weak ones)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Hit]) -> None:
        groups = self._by_slot(batch) if self.cluster else [batch]
        try:
            replies = await self._evaluate(groups)
            if any(isinstance(reply, NoScriptError) for reply in replies):
                await self.redis.script_load(GCRA_LUA)  # Redis lost the script: load it again
                replies = await self._evaluate(groups)
        except (RedisError, OSError) as error:
            replies = [error] * len(groups)
        for group, reply in zip(groups, replies, strict=True):
            self._deliver(group, reply)

    def _by_slot(self, batch: list[_Hit]) -> list[list[_Hit]]:
        groups: dict[int, list[_Hit]] = {}
        for hit in batch:
            groups.setdefault(key_slot(hit[0].encode()), []).append(hit)
        return list(groups.values())

    @staticmethod
    def _arguments(group: list[_Hit]) -> list[str | int]:
        """The script's KEYS then ARGV for `group`."""
        return [*(hit[0] for hit in group), *(n for hit in group for n in hit[1:3])]

    async def _evaluate(self, groups: list[list[_Hit]]) -> list[Any]:
        """Each group's reply, or the error it got."""
        if len(groups) == 1:
            try:
                group = groups[0]
                return [await self.redis.evalsha(self.sha, len(group), *self._arguments(group))]
            except ResponseError as error:
                return [error]
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.evalsha(self.sha, len(group), *self._arguments(group))
            return list(await pipe.execute(raise_on_error=False))

    @staticmethod
    def _deliver(group: list[_Hit], reply: Any) -> None:
        error = reply if isinstance(reply, BaseException) else None
        if error is None and (not isinstance(reply, list) or len(reply) != 3 * len(group)):
            error = ResponseError(f"unexpected script reply {reply!r}")
        for index, (_, _, _, future) in enumerate(group):
            if future.done():  # the request went away meanwhile
                continue
            if error is not None:
                future.set_exception(StoreUnavailable(f"{type(error).__name__}: {error}"))
            else:
                future.set_result(reply[3 * index : 3 * index + 3])


_Hit = tuple[str, int, int, "asyncio.Future[Any]"]


__all__ = [
    "GCRA_LUA",
    "MICROS",
    "MemoryRateStore",
    "RateStore",
    "RedisRateStore",
    "StoreUnavailable",
]
