"""`RoundRobin`: each candidate in turn, the default balancer."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bff.upstream.balancer import Balancer, Clock
from bff.upstream.instance import Instance


class RoundRobin(Balancer):
    """Each candidate in turn."""

    def __init__(
        self,
        instances: Sequence[Instance],
        zone: str | None = None,
        *,
        clock: Clock = time.monotonic,
        name: str = "",
    ) -> None:
        super().__init__(instances, zone, clock=clock, name=name)
        self._next = 0

    def pick(self, candidates: list[Instance]) -> Instance:
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return chosen
