"""Active health checks: every instance probed in the background, verdicts with hysteresis.

`HealthVerdicts` is the pure part: `unhealthy_threshold` failed probes in a row take an
instance out, `healthy_threshold` good ones bring it back. The first probe of an instance
decides at once (the gateway checks every instance once at start-up, before it serves, so
readiness and routing start from facts rather than hope).

`HealthChecker` runs one task per instance: sleep a jittered interval, probe through the
pool's own transport (`BalancedTransport.probe`, the instance's connection pool: no second
client), record the verdict. Probes never sit on the request path. `start()` and `stop()` go
with the app's lifespan; `stop()` cancels and awaits every task.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bff.upstream.instance import Instance

log = logging.getLogger("bff.upstream")

JITTER = 0.1  # each interval is drawn from [1 - JITTER, 1 + JITTER] x interval

Probe = Callable[[Instance], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class HealthSettings:
    path: str = "/health"
    interval: float = 2.0
    timeout: float = 0.5
    unhealthy_threshold: int = 2
    healthy_threshold: int = 2


class HealthVerdicts:
    """Turns probe results into `Instance.healthy`, with thresholds (pure; `now` injected)."""

    def __init__(
        self,
        settings: HealthSettings,
        *,
        on_change: Callable[[], None] = lambda: None,
        name: str = "",
    ) -> None:
        self.settings = settings
        self.on_change = on_change  # the balancer's `invalidate`
        self.name = name
        self._streaks: dict[Instance, int] = {}  # >0 good probes in a row, <0 failed ones
        self._probed: set[Instance] = set()

    def observe(self, instance: Instance, ok: bool, now: float) -> bool:
        """Record one probe; True when the instance's health changed."""
        first = instance not in self._probed
        self._probed.add(instance)
        streak = self._streaks.get(instance, 0)
        streak = max(streak, 0) + 1 if ok else min(streak, 0) - 1
        self._streaks[instance] = streak
        if instance.healthy and not ok:
            if not first and -streak < self.settings.unhealthy_threshold:
                return False
            why = f"{-streak} failed probe(s) of {self.settings.path}"
            return self._set(instance, False, why, now)
        if not instance.healthy and ok:
            if not first and streak < self.settings.healthy_threshold:
                return False
            return self._set(instance, True, None, now)
        return False

    def _set(self, instance: Instance, healthy: bool, reason: str | None, now: float) -> bool:
        instance.healthy = healthy
        instance.health_reason = reason
        instance.since = now
        if healthy:
            log.warning("upstream %s: %s healthy again", self.name, instance.url)
        else:
            log.warning("upstream %s: %s unhealthy (%s)", self.name, instance.url, reason)
        self.on_change()
        return True


class HealthChecker:
    """Background probes of a pool's instances, feeding `HealthVerdicts`."""

    def __init__(
        self,
        instances: Sequence[Instance],
        probe: Probe,
        verdicts: HealthVerdicts,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instances = list(instances)
        self.probe = probe
        self.verdicts = verdicts
        self.random = rng or random.Random()
        self.clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def check_all(self) -> None:
        """Probe every instance once, concurrently (start-up: bounded by the probe timeout)."""
        results = await asyncio.gather(*(self._safe_probe(i) for i in self.instances))
        now = self.clock()
        for instance, ok in zip(self.instances, results, strict=True):
            self.verdicts.observe(instance, ok, now)

    def start(self) -> None:
        """One probing task per instance, each starting at a random point of the interval."""
        if self.running:
            return
        self._tasks = [
            asyncio.create_task(self._watch(i), name=f"health check {i.url}")
            for i in self.instances
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # a probe that died of its own error must not stop the others' (or the pool's) close
        await asyncio.gather(*tasks, return_exceptions=True)

    def delay(self, first: bool) -> float:
        """Seconds before the next probe: the first at a random point of one interval (N
        gateways started together do not probe in step), then the interval +- `JITTER`."""
        interval = self.verdicts.settings.interval
        if first:
            return self.random.uniform(0, interval)
        return interval * self.random.uniform(1 - JITTER, 1 + JITTER)

    async def _watch(self, instance: Instance) -> None:
        await asyncio.sleep(self.delay(first=True))
        while True:
            ok = await self._safe_probe(instance)
            self.verdicts.observe(instance, ok, self.clock())
            await asyncio.sleep(self.delay(first=False))

    async def _safe_probe(self, instance: Instance) -> bool:
        try:
            return await self.probe(instance)
        except asyncio.CancelledError:
            raise
        except Exception:  # a probe that breaks is a failed probe, never a dead checker
            log.exception("health probe of %s failed unexpectedly", instance.url)
            return False
