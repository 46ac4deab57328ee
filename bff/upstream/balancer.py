"""Balancers: the base decides what may be chosen, a strategy only picks among candidates.

A strategy implements one `pick()`; health filtering, panic mode and zone preference happen
once, here, so every strategy gets them for free (the shape of Envoy's `chooseHost`):

1. usable instances: healthy (active checks) and not ejected (outlier detection);
2. panic: when none is usable, every instance is a candidate: sending to instances that may
   be down beats failing every request (Envoy's panic threshold at its limit);
3. zones: the gateway's own zone's candidates when it has any, else every zone's (failover);
   the switch either way is logged once.

The candidate list is cached and rebuilt only when `invalidate()` is called (a health or
ejection change) or an ejection expires (checked lazily, on the next choice), so a choice
costs a clock read and a `pick`.
Decisions are pure functions of the instances' state and the injected clock.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence

from bff.upstream.instance import Instance

log = logging.getLogger("bff.upstream")

Clock = Callable[[], float]


class NoInstanceAvailable(Exception):
    """Raised by `choose` when the pool has no instance at all."""


class Balancer(ABC):
    def __init__(
        self,
        instances: Sequence[Instance],
        zone: str | None = None,
        *,
        clock: Clock = time.monotonic,
        name: str = "",
    ) -> None:
        self.instances = list(instances)
        self.zone = zone
        self.clock = clock
        self.name = name  # the upstream's, for log lines
        self.panic = False  # no usable instance: every instance is a candidate
        self.failed_over = False  # own zone has instances, none usable: other zones serve
        self._candidates: list[Instance] = []
        self._valid_until = -math.inf
        self._has_local = zone is not None and any(i.zone == zone for i in self.instances)

    def invalidate(self) -> None:
        """An instance's health or ejection changed: rebuild the candidates now, so that a
        zone failover or panic is logged when it happens, not at the next request."""
        self._refresh(self.clock())

    def candidates(self, now: float | None = None) -> list[Instance]:
        """The instances a strategy may pick from now (see the module docstring)."""
        if now is None:
            now = self.clock()
        if now >= self._valid_until:
            self._refresh(now)
        return self._candidates

    def usable_count(self, now: float | None = None) -> int:
        """Instances healthy and not ejected: what readiness counts (panic does not count)."""
        if now is None:
            now = self.clock()
        return sum(1 for i in self.instances if i.usable(now))

    def choose(self, avoid: Collection[Instance] = ()) -> Instance:
        """An instance for one attempt; `avoid` (instances already tried) when others exist."""
        now = self.clock()  # `candidates()` inline: every attempt chooses
        if now >= self._valid_until:
            self._refresh(now)
        candidates = self._candidates
        if avoid:
            candidates = self._avoiding(candidates, avoid)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NoInstanceAvailable
        return self.pick(candidates)

    @abstractmethod
    def pick(self, candidates: list[Instance]) -> Instance:
        """Pick one of at least two candidates."""

    # Whether `observe` should be called after each attempt: False spares the others a call.
    observes = False

    def observe(self, instance: Instance, seconds: float, now: float, failed: bool) -> None:  # noqa: B027
        """One attempt on `instance` ended at `now` after `seconds` (for latency-aware
        strategies; the transport calls it only when `observes` is set). Default: nothing."""

    def _avoiding(self, candidates: list[Instance], avoid: Collection[Instance]) -> list[Instance]:
        """Candidates not tried yet: the zone's, else any usable one, else all as they were."""
        fresh = [i for i in candidates if i not in avoid]
        if fresh:
            return fresh
        now = self.clock()
        elsewhere = [i for i in self.instances if i not in avoid and i.usable(now)]
        return elsewhere or candidates

    def _refresh(self, now: float) -> None:
        usable = [i for i in self.instances if i.usable(now)]
        self._valid_until = min(
            (i.ejected_until for i in self.instances if i.ejected_until > now), default=math.inf
        )
        panic = not usable and bool(self.instances)
        pool = usable if usable else list(self.instances)
        failed_over = False
        if self.zone is not None:
            local = [i for i in pool if i.zone == self.zone]
            failed_over = self._has_local and not local
            if local:
                pool = local
        self._log_changes(panic, failed_over, pool)
        self._candidates = pool

    def _log_changes(self, panic: bool, failed_over: bool, pool: list[Instance]) -> None:
        if panic != self.panic:
            self.panic = panic
            if panic:
                log.warning(
                    "upstream %s: no usable instance; panic mode, sending to all %d",
                    self.name,
                    len(self.instances),
                )
            else:
                log.warning("upstream %s: usable instances again; panic mode over", self.name)
        if failed_over != self.failed_over:
            self.failed_over = failed_over
            if failed_over:
                zones = sorted({str(i.zone) for i in pool})
                log.warning(
                    "upstream %s: no usable instance in zone %s; failing over to %s",
                    self.name,
                    self.zone,
                    ", ".join(zones),
                )
            else:
                log.warning("upstream %s: zone %s usable again; failing back", self.name, self.zone)
