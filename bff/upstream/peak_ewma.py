"""`PeakEwma`: the power of two choices on latency times load, as Finagle and Linkerd do it.

The cost of an instance is its latency estimate times its requests in flight plus one, per
unit of weight; of two distinct candidates drawn at random, the cheaper wins.

Why latency and not only requests in flight (`least_requests`): at a gateway's usual
concurrency an instance is mostly idle between calls, so a slow instance shows as busy only
while a call is on it, and gets its next call as soon as that one ends. Measured with
`python -m bench.balancer_shares` (one of three instances 100 ms slower, calls in fives as a
Dashboard makes them, 20 requests/s for 40 s): the slow one's share of the calls is 33.3 %
under `round_robin`, 18.3 % under `least_requests` (requests' p99 111 ms), 0.1 % here (p99
11 ms); at 50 requests/s 13 % against 0.0-0.9 % (five runs on a loaded machine: latency
spikes of the quick instances make the slow one look less slow). A latency estimate
remembers the slowness between calls. Why distinct draws: with three instances, two
independent draws are the same one a ninth of the time, and then even the worst one wins.

The estimate (`Instance.peak_latency` as of `peak_at`) is a decaying peak: each answer's
time, discounted by exp(-age / `DECAY`), and the estimate is the largest of them. So:

- peak-sensitive: an attempt slower than the estimate becomes the estimate at once, so a
  slowdown is avoided from its first slow answer (and the in-flight factor already steers
  away from an instance whose answers are late, before any of them arrives);
- quick answers do not erase a slow one, time does (`DECAY`, 10 s: Finagle's and Linkerd's),
  so one slow answer among quick ones still counts for a few seconds, and an instance that
  keeps answering at one speed is worth that speed;
- an instance avoided for being slow decays toward zero and is tried again after about
  `DECAY` x ln(slow / fast) seconds (39 s for 100 ms against 2 ms): a still slow one costs one
  call per try, a recovered one is worth its quick answer at once and gets its share back;
- the decay is for instances nobody has heard from lately: while a call is in flight the
  estimate counts as last updated, so a try is one call, not every call that arrives before
  it comes back;
- a failed attempt counts as at least `FAILURE_SECONDS`: an instance that refuses at once
  must not look the fastest and draw every call (the black hole of latency-only balancing);
  health checks and outlier ejection still take a dead one out.

Finagle and tower blend a quicker answer into the estimate instead of keeping the peak; with
a time-based weight both come down at the same rate, and the peak is one line and one `exp`.

A floor on the estimate (`FLOOR_SECONDS`, 1 ms) keeps the in-flight factor meaningful: below
it latency differences do not matter to a gateway and instances compare by load, as under
`least_requests`; and an instance never observed (or idle for long, its estimate decayed)
draws at most about (the others' latency / 1 ms) calls at once before its first answer says
what it is worth, not every call.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from math import exp

from bff.upstream.balancer import Balancer, Clock
from bff.upstream.instance import Instance

DECAY = 10.0  # seconds: Finagle's and Linkerd's default decay time
FAILURE_SECONDS = 0.25  # what a failed attempt counts as, at least
FLOOR_SECONDS = 1e-3  # the smallest estimate: below it, instances compare by load alone


class PeakEwma(Balancer):
    observes = True

    def __init__(
        self,
        instances: Sequence[Instance],
        zone: str | None = None,
        *,
        clock: Clock = time.monotonic,
        name: str = "",
        rng: random.Random | None = None,
        decay: float = DECAY,
    ) -> None:
        super().__init__(instances, zone, clock=clock, name=name)
        self.random = (rng or random.Random()).random
        self.decay = decay

    def pick(self, candidates: list[Instance]) -> Instance:
        random = self.random
        n = len(candidates)
        first = int(random() * n)
        second = int(random() * (n - 1))
        if second >= first:
            second += 1
        a, b = candidates[first], candidates[second]
        now = self.clock()
        # b's cost below a's, without dividing by the weights; `cost` inlined (hot path)
        scale = -1.0 / self.decay
        cost_a, cost_b = a.peak_latency, b.peak_latency
        if not a.in_flight:
            cost_a *= exp((now - a.peak_at) * scale)
        if not b.in_flight:
            cost_b *= exp((now - b.peak_at) * scale)
        load_a = (cost_a if cost_a > FLOOR_SECONDS else FLOOR_SECONDS) * (a.in_flight + 1)
        load_b = (cost_b if cost_b > FLOOR_SECONDS else FLOOR_SECONDS) * (b.in_flight + 1)
        if load_b * a.weight < load_a * b.weight:
            return b
        return a

    def estimate(self, instance: Instance, now: float) -> float:
        """The latency estimate decayed to `now`, seconds."""
        return instance.peak_latency * exp((instance.peak_at - now) / self.decay)

    def cost(self, instance: Instance, now: float) -> float:
        """The estimate (at least the floor) times requests in flight + 1, weight aside; with
        a call in flight, the estimate as last updated (see the module docstring)."""
        estimate = self.estimate(instance, now) if not instance.in_flight else instance.peak_latency
        return max(estimate, FLOOR_SECONDS) * (instance.in_flight + 1)

    def observe(self, instance: Instance, seconds: float, now: float, failed: bool) -> None:
        if failed and seconds < FAILURE_SECONDS:
            seconds = FAILURE_SECONDS
        decayed = instance.peak_latency * exp((instance.peak_at - now) / self.decay)
        instance.peak_latency = seconds if seconds > decayed else decayed
        instance.peak_at = now
