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
        self._kept: dict[Instance, int] = {}  # scores of instances out of the current list
        self._for: list[Instance] | None = None
        self._scores: list[int] = []
        self._weights: list[int] = []
        self._total = 0

    def pick(self, candidates: list[Instance]) -> Instance:
        if candidates is not self._for:  # the base keeps one list until something changes
            self._switch(candidates)
        scores, weights = self._scores, self._weights
        best = 0
        best_score = scores[0] = scores[0] + weights[0]
        for k in range(1, len(scores)):
            score = scores[k] = scores[k] + weights[k]
            if score > best_score:
                best, best_score = k, score
        scores[best] -= self._total
        return candidates[best]

    def _switch(self, candidates: list[Instance]) -> None:
        if self._for is not None:
            self._kept.update(zip(self._for, self._scores, strict=True))
        self._for = candidates
        self._scores = [self._kept.get(i, 0) for i in candidates]
        self._weights = [i.weight for i in candidates]
        self._total = sum(self._weights)
