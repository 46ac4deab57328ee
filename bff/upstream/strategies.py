"""The balancers by their config name (`upstreams.*.balancer`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bff.upstream.balancer import Balancer, Clock
from bff.upstream.instance import Instance
from bff.upstream.least_requests import LeastRequests
from bff.upstream.peak_ewma import PeakEwma
from bff.upstream.round_robin import RoundRobin
from bff.upstream.weighted import Weighted

BALANCERS: dict[str, type[Balancer]] = {
    "round_robin": RoundRobin,
    "weighted": Weighted,
    "least_requests": LeastRequests,
    "peak_ewma": PeakEwma,
}


def make_balancer(
    kind: str,
    instances: Sequence[Instance],
    zone: str | None = None,
    *,
    clock: Clock = time.monotonic,
    name: str = "",
) -> Balancer:
    """The balancer named in config (validated there: an unknown kind is a KeyError here)."""
    return BALANCERS[kind](instances, zone, clock=clock, name=name)
