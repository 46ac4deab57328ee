"""`Weighted`: smooth weighted round robin, as nginx does it.

Each pick, every candidate's running score grows by its weight; the highest score wins and
gives back the total weight. Weights 1:3 give `b a b b` rather than `a b b b`: the heavy
instance's share is spread out instead of arriving in bursts, and the split is exact over
every cycle of `sum(weights)` picks. Scores of instances out of the candidate set are kept,
so an instance coming back does not start with a burst.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from bff.upstream.balancer import Balancer, Clock
from bff.upstream.instance import Instance


class Weighted(Balancer):
    """Smooth weighted round robin over the candidates, by `Instance.weight`."""

    def __init__(
        self,
        instances: Sequence[Instance],
        zone: str | None = None,
        *,
        clock: Clock = time.monotonic,
        name: str = "",
    ) -> None:
        super().__init__(instances, zone, clock=clock, name=name)
        self._scores: dict[Instance, int] = {}

    def pick(self, candidates: list[Instance]) -> Instance:
        scores = self._scores
        total = 0
        best = candidates[0]
        best_score = None
        for instance in candidates:
            score = scores.get(instance, 0) + instance.weight
            scores[instance] = score
            total += instance.weight
            if best_score is None or score > best_score:
                best, best_score = instance, score
        scores[best] -= total
        return best
