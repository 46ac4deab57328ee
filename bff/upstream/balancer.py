"""Balancers: the base filters what may be chosen, a strategy only picks among candidates.

A strategy implements one `pick()`; zone preference and health filtering happen once, here,
so every strategy gets them for free (the shape of Envoy's `chooseHost`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from bff.upstream.instance import Instance


class NoInstanceAvailable(Exception):
    """Raised by `choose` when no instance may take a request."""


class Balancer(ABC):
    def __init__(self, instances: Sequence[Instance], zone: str | None = None) -> None:
        self.instances = list(instances)
        self.zone = zone

    def candidates(self) -> list[Instance]:
        """Healthy instances, those in the gateway's own zone first when it has any."""
        healthy = [i for i in self.instances if i.healthy]
        if self.zone is not None:
            local = [i for i in healthy if i.zone == self.zone]
            if local:
                return local
        return healthy

    def choose(self) -> Instance:
        candidates = self.candidates()
        if not candidates:
            raise NoInstanceAvailable
        if len(candidates) == 1:
            return candidates[0]
        return self.pick(candidates)

    @abstractmethod
    def pick(self, candidates: list[Instance]) -> Instance:
        """Pick one of at least two candidates."""


class RoundRobin(Balancer):
    """Each candidate in turn."""

    def __init__(self, instances: Sequence[Instance], zone: str | None = None) -> None:
        super().__init__(instances, zone)
        self._next = 0

    def pick(self, candidates: list[Instance]) -> Instance:
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return chosen


BALANCERS: dict[str, type[Balancer]] = {"round_robin": RoundRobin}


def make_balancer(kind: str, instances: Sequence[Instance], zone: str | None = None) -> Balancer:
    """The balancer named in config; kinds not built yet fall back to round robin."""
    return BALANCERS.get(kind, RoundRobin)(instances, zone)
