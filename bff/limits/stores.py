"""Where rate-limit state lives: in this process, or in Redis shared by every replica.

Both stores answer `hit(key, rule)` with (allowed, microseconds to wait, TAT minus now), the
GCRA step of `bff.limits.gcra`. The Redis store runs that step as one Lua script (one round
trip, atomic, on Redis's own clock so replicas with skewed clocks still agree) through
EVALSHA, loading the script again if the server lost it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from bff.limits.gcra import MICROS, Rule, decide
from bff.limits.resp import RespClient, RespError

KEY_PREFIX = "bff:rl:"
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
    """Budgets shared by every gateway using the same Redis.

    The hits made in one turn of the event loop go to Redis together, as one EVALSHA of the
    script over all their keys (one command, one round trip), on the limiter's own pipelined
    connection (`bff.limits.resp`): per request that is a few microseconds of CPU under load,
    where a redis-py command each cost 100-250 us. (All keys of a batch in one script call:
    fine for a Redis with or without replicas; Redis Cluster would need one slot per call.)
    """

    def __init__(self, client: RespClient, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self.sha = hashlib.sha1(GCRA_LUA.encode()).hexdigest()
        self._pending: list[_Hit] = []

    async def hit(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((self.prefix + key, rule.interval_us, rule.period_us, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)  # after every hit of this turn of the loop is queued
        allowed, wait, backlog = await future
        return bool(allowed), int(wait), int(backlog)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._send(batch, retry=True)

    def _send(self, batch: list[_Hit], *, retry: bool) -> None:
        keys = [hit[0] for hit in batch]
        args = [number for hit in batch for number in hit[1:3]]
        reply = self.client.call("EVALSHA", self.sha, len(keys), *keys, *args)
        reply.add_done_callback(lambda done: self._deliver(batch, done, retry))

    def _deliver(self, batch: list[_Hit], reply: asyncio.Future[Any], retry: bool) -> None:
        error = reply.exception()
        if isinstance(error, RespError) and str(error).startswith("NOSCRIPT") and retry:
            self.client.call("SCRIPT", "LOAD", GCRA_LUA)  # Redis lost the script: load it again
            self._send(batch, retry=False)  # pipelined behind the load: same connection, in order
            return
        flat = None if error is not None else reply.result()
        if error is None and (not isinstance(flat, list) or len(flat) != 3 * len(batch)):
            error = RespError(f"unexpected script reply {flat!r}")
        for index, (_, _, _, future) in enumerate(batch):
            if future.done():  # the request went away meanwhile
                continue
            if error is not None:
                future.set_exception(StoreUnavailable(f"{type(error).__name__}: {error}"))
            else:
                assert flat is not None
                future.set_result(flat[3 * index : 3 * index + 3])


_Hit = tuple[str, int, int, "asyncio.Future[Any]"]


__all__ = [
    "GCRA_LUA",
    "MICROS",
    "MemoryRateStore",
    "RateStore",
    "RedisRateStore",
    "StoreUnavailable",
]
