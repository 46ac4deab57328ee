"""The balanced upstream HTTP layer: pools of instances behind one typed request call.

Nothing above this package sees the HTTP client: `UpstreamPool.request` returns an
`UpstreamResponse` (headers in a case-insensitive `Headers`) or raises from `bff.errors`.
"""

from bff.upstream.balancer import Balancer, NoInstanceAvailable
from bff.upstream.http11 import Headers
from bff.upstream.instance import Instance
from bff.upstream.least_requests import LeastRequests
from bff.upstream.peak_ewma import PeakEwma
from bff.upstream.pool import UpstreamPool
from bff.upstream.registry import Upstreams
from bff.upstream.response import UpstreamResponse
from bff.upstream.round_robin import RoundRobin
from bff.upstream.strategies import BALANCERS, make_balancer
from bff.upstream.weighted import Weighted

__all__ = [
    "BALANCERS",
    "Balancer",
    "Headers",
    "Instance",
    "LeastRequests",
    "NoInstanceAvailable",
    "PeakEwma",
    "RoundRobin",
    "UpstreamPool",
    "UpstreamResponse",
    "Upstreams",
    "Weighted",
    "make_balancer",
]
