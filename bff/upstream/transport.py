"""An httpx transport that sends each request to an instance chosen by the balancer.

Requests are addressed to the logical upstream (`http://users/users/1`); this transport
rewrites the origin per attempt, so a retry transport wrapped around it (later) gets a fresh
choice each time. Each instance has its own small connection pool: httpx's pool does work
proportional to its size on every request, so many small pools beat one big one.
"""

from __future__ import annotations

import math

import httpx

from bff.upstream.balancer import Balancer
from bff.upstream.instance import Instance


class BalancedTransport(httpx.AsyncBaseTransport):
    def __init__(self, balancer: Balancer, max_connections: int) -> None:
        self.balancer = balancer
        per_instance = max(1, math.ceil(max_connections / max(1, len(balancer.instances))))
        limits = httpx.Limits(
            max_connections=per_instance,
            max_keepalive_connections=per_instance,
            keepalive_expiry=30.0,
        )
        self._routes: dict[int, tuple[httpx.URL, httpx.AsyncHTTPTransport]] = {
            id(instance): (httpx.URL(instance.url), httpx.AsyncHTTPTransport(limits=limits))
            for instance in balancer.instances
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        instance = self.balancer.choose()
        origin, transport = self._routes[id(instance)]
        request.url = request.url.copy_with(
            scheme=origin.scheme, host=origin.host, port=origin.port
        )
        request.headers["Host"] = origin.netloc.decode("ascii")
        request.extensions["bff.instance"] = instance
        instance.in_flight += 1
        try:
            return await transport.handle_async_request(request)
        finally:
            instance.in_flight -= 1

    async def probe(self, instance: Instance, path: str) -> int:
        """GET `path` on one given instance (health checks); returns the status code."""
        origin, transport = self._routes[id(instance)]
        request = httpx.Request("GET", origin.join(path))
        response = await transport.handle_async_request(request)
        await response.aread()
        await response.aclose()
        return response.status_code

    def instance_of(self, request: httpx.Request) -> Instance | None:
        return request.extensions.get("bff.instance")

    async def aclose(self) -> None:
        for _, transport in self._routes.values():
            await transport.aclose()
