"""One upstream instance and the state the balancer reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class Instance:
    """An address of an upstream service.

    `healthy` is the seam for active health checks and outlier ejection: the balancer base
    class only hands healthy instances to a strategy. `in_flight` feeds least-requests.
    """

    url: str
    weight: int = 1
    zone: str | None = None
    healthy: bool = True
    in_flight: int = field(default=0)

    def __repr__(self) -> str:
        return f"Instance({self.url!r}, weight={self.weight}, zone={self.zone!r})"
