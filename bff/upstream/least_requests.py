"""`LeastRequests`: the power of two random choices on requests in flight, weighted.

Two candidates are drawn at random, in proportion to their weights, and the one with fewer
requests in flight per unit of weight wins (a tie keeps the first draw). Asking two instead of
all keeps a choice O(1) and avoids the herd that "always the least loaded" sends to one
instance that just came back (Mitzenmacher; Envoy's default least-request). When idle, the
weighted draw alone splits traffic by weight.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from bff.upstream.balancer import Balancer, Clock
from bff.upstream.instance import Instance


class LeastRequests(Balancer):
    def __init__(
        self,
        instances: Sequence[Instance],
        zone: str | None = None,
        *,
        clock: Clock = time.monotonic,
        name: str = "",
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(instances, zone, clock=clock, name=name)
        self.random = (rng or random.Random()).random
        self._for: list[Instance] | None = None
        self._cumulative: list[int] = []
        self._equal = True

    def pick(self, candidates: list[Instance]) -> Instance:
        if candidates is not self._for:  # the base keeps one list until something changes
            self._for = candidates
            self._cumulative = list(accumulate(i.weight for i in candidates))
            self._equal = len({i.weight for i in candidates}) == 1
        random = self.random
        if self._equal:
            n = len(candidates)
            a = candidates[int(random() * n)]
            b = candidates[int(random() * n)]
        else:
            cumulative = self._cumulative
            total = cumulative[-1]
            a = candidates[bisect_right(cumulative, random() * total)]
            b = candidates[bisect_right(cumulative, random() * total)]
        # fewer in flight per weight wins: a.in/a.w <= b.in/b.w without dividing
        if b.in_flight * a.weight < a.in_flight * b.weight:
            return b
        return a
