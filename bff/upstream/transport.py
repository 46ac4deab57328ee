"""The transport stack of a pool: each layer sends one request and returns the reply.

    retry (later)        outermost, so that each attempt below is seen as its own attempt
      └── telemetry      (later) a client span per attempt
            └── BalancedTransport   the balancer picks an instance per attempt, and that
                                    instance's `ConnectionPool` sends the request

A `Transport` raises only the `TransportError` tree of `bff.upstream.http11` (and
`NoInstanceAvailable`); `UpstreamPool` translates those into `bff.errors` at the package edge.
Each instance has its own small connection pool (`max_connections` split over the
instances), so a request's cost does not depend on how many connections exist.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from bff.upstream.balancer import Balancer
from bff.upstream.connections import ConnectionPool
from bff.upstream.http11 import MAX_BODY
from bff.upstream.instance import Instance
from bff.upstream.request import Request, build_request


@dataclass(slots=True)
class Reply:
    """What one attempt got back, and from which instance.

    Read-only by convention: one is built per call, and a frozen dataclass costs 3x as much.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    instance: Instance


class Transport(ABC):
    """One layer of the stack: send a request once (or as the layer decides)."""

    @abstractmethod
    async def send(self, request: Request, deadline: float, attempt: int = 1) -> Reply:
        """The reply to `request` by `deadline` (loop time), or a `TransportError`.

        `attempt` counts the tries of one call (1 = the first): layers below a retry layer
        see each try as its own attempt (client spans, outlier accounting)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the layer holds (connections), and what the layers below hold."""


class BalancedTransport(Transport):
    """Sends each attempt to the instance the balancer chooses now."""

    def __init__(
        self,
        balancer: Balancer,
        *,
        upstream: str = "",
        max_connections: int,
        connect_timeout: float,
        max_body: int = MAX_BODY,
    ) -> None:
        self.upstream = upstream  # the upstream's name, for layers that report per upstream
        self.balancer = balancer
        per_instance = max(1, math.ceil(max_connections / max(1, len(balancer.instances))))
        self._pools: dict[int, ConnectionPool] = {
            id(instance): ConnectionPool(
                instance.url,
                limit=per_instance,
                connect_timeout=connect_timeout,
                max_body=max_body,
            )
            for instance in balancer.instances
        }

    def pool_of(self, instance: Instance) -> ConnectionPool:
        return self._pools[id(instance)]

    async def send(self, request: Request, deadline: float, attempt: int = 1) -> Reply:
        instance = self.balancer.choose()
        instance.in_flight += 1
        try:
            status, headers, body = await self._pools[id(instance)].send(request, deadline)
        finally:
            instance.in_flight -= 1
        return Reply(status, headers, body, instance)

    async def probe(self, instance: Instance, path: str, deadline: float) -> int:
        """GET `path` on one given instance (health checks); returns the status code."""
        request = build_request("GET", path)
        status, _, _ = await self._pools[id(instance)].send(request, deadline)
        return status

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
