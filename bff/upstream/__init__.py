"""The balanced upstream HTTP layer: pools of instances behind one typed request call.

Nothing above this package sees the HTTP client: `UpstreamPool.request` returns an
`UpstreamResponse` (headers in a case-insensitive `Headers`) or raises from `bff.errors`.
"""

from bff.upstream.balancer import Balancer, RoundRobin, make_balancer
from bff.upstream.http11 import Headers
from bff.upstream.instance import Instance
from bff.upstream.pool import UpstreamPool, UpstreamResponse
from bff.upstream.registry import Upstreams

__all__ = [
    "Balancer",
    "Headers",
    "Instance",
    "RoundRobin",
    "UpstreamPool",
    "UpstreamResponse",
    "Upstreams",
    "make_balancer",
]
