"""Passive outlier detection: real traffic that keeps failing takes an instance out for a while.

`consecutive_failures` failed attempts in a row (connect failure, time-out, 5xx) eject an
instance for `ejection` times the number of times it has been ejected (capped at
`MAX_BACKOFF` times), so an instance that keeps failing stays out longer each time, as
Envoy's `base_ejection_time` does. The count of ejections decays: each success after an
ejection has been over for as long as it lasted forgives one.

At most `MAX_EJECTED_SHARE` of a pool is ejected at once, and one instance always may be (so
a pool of one can still eject); when nothing usable is left anyway, the balancer's panic mode
uses every instance. Decisions are pure: `failed` and `succeeded` take `now` and change only
the instances' attributes; the caller passes `now` from its clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bff.upstream.instance import Instance

log = logging.getLogger("bff.upstream")

MAX_EJECTED_SHARE = 0.5
MAX_BACKOFF = 10  # the longest ejection is this many times the base ejection time


class OutlierDetector:
    def __init__(
        self,
        instances: Sequence[Instance],
        *,
        consecutive_failures: int = 5,
        ejection: float = 30.0,
        on_change: Callable[[], None] = lambda: None,
        name: str = "",
    ) -> None:
        self.instances = list(instances)
        self.threshold = consecutive_failures
        self.base = ejection
        self.on_change = on_change  # the balancer's `invalidate`
        self.name = name
        self.max_ejected = max(1, int(len(self.instances) * MAX_EJECTED_SHARE))

    def succeeded(self, instance: Instance, now: float) -> None:
        """An attempt got an answer below 500."""
        instance.consecutive_failures = 0
        if instance.ejections and now >= instance.ejected_until + self.base * instance.ejections:
            instance.ejections -= 1

    def failed(self, instance: Instance, now: float, reason: str) -> bool:
        """An attempt failed on `instance`; True when that ejected it."""
        instance.consecutive_failures += 1
        if instance.consecutive_failures < self.threshold or instance.ejected(now):
            return False
        if self.ejected_count(now) >= self.max_ejected:
            return False
        instance.ejections += 1
        duration = self.base * min(instance.ejections, MAX_BACKOFF)
        instance.ejected_until = now + duration
        instance.consecutive_failures = 0
        instance.eject_reason = f"{self.threshold} consecutive failures, last: {reason}"
        instance.since = now
        log.warning(
            "upstream %s: ejected %s for %.3g s (%s)",
            self.name,
            instance.url,
            duration,
            instance.eject_reason,
        )
        self.on_change()
        return True

    def ejected_count(self, now: float) -> int:
        return sum(1 for i in self.instances if i.ejected(now))
