"""Where rate-limit state lives: in this process, or in Redis shared by every replica.

Both stores answer `hit(key, rule)` with (allowed, microseconds to wait, TAT minus now), the
GCRA step of `bff.limits.gcra`. The Redis store runs that step as one Lua script (one round
trip, atomic, on Redis's own clock so replicas with skewed clocks still agree) through
EVALSHA; redis-py falls back to EVAL once if the server lost the script.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bff.limits.gcra import MICROS, Rule, decide

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

    def hit_now(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        now = self.clock()
        allowed, tat, wait = decide(self.tats.get(key), now, rule.interval_us, rule.period_us)
        if allowed:
            if len(self.tats) >= MEMORY_SWEEP_AT and key not in self.tats:
                self.sweep(now)
            self.tats[key] = tat
        return allowed, wait, tat - now

    def sweep(self, now: int) -> None:
        """Forget clients whose budget is full again: they look exactly like new ones."""
        self.tats = {k: t for k, t in self.tats.items() if t > now}

    async def hit(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        return self.hit_now(key, rule)


# KEYS[1]: the client's TAT; ARGV: interval_us, period_us. Returns {allowed, wait_us, backlog_us}.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, 0, new_tat - now}
"""


class RedisRateStore(RateStore):
    """Budgets shared by every gateway using the same Redis."""

    def __init__(self, redis: Redis, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self.script = redis.register_script(GCRA_LUA)

    async def hit(self, key: str, rule: Rule) -> tuple[bool, int, int]:
        try:
            reply = await self.script(
                keys=[self.prefix + key], args=[rule.interval_us, rule.period_us]
            )
        except (RedisError, OSError, TimeoutError) as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error
        allowed, wait, backlog = (int(v) for v in reply)
        return bool(allowed), wait, backlog


__all__ = [
    "GCRA_LUA",
    "MICROS",
    "MemoryRateStore",
    "RateStore",
    "RedisRateStore",
    "StoreUnavailable",
]
