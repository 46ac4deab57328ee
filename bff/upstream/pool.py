"""`UpstreamPool`: one configured upstream, its instances and its shared keep-alive client.

This is the boundary where httpx stops: transport failures become `UpstreamUnavailable`,
time-outs `UpstreamTimeout`. HTTP statuses are passed up untouched in `UpstreamResponse`;
typed clients decide what a status means for their service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bff.errors import BadUpstreamResponse, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.balancer import Balancer, NoInstanceAvailable, make_balancer
from bff.upstream.instance import Instance
from bff.upstream.transport import BalancedTransport

Params = Mapping[str, str | int] | None


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    headers: httpx.Headers
    upstream: str

    def json(self) -> Any:
        """The decoded body; an unreadable body is the upstream's fault, never the caller's."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise BadUpstreamResponse(self.upstream) from exc


class UpstreamPool:
    def __init__(
        self,
        name: str,
        instances: list[Instance],
        *,
        balancer: str = "round_robin",
        zone: str | None = None,
        connect_timeout: float = 0.5,
        total_timeout: float = 2.0,
        max_connections: int = 100,
        required: bool = True,
    ) -> None:
        self.name = name
        self.required = required
        self.total_timeout = total_timeout
        self.balancer: Balancer = make_balancer(balancer, instances, zone)
        self.transport = BalancedTransport(self.balancer, max_connections)
        self._client = httpx.AsyncClient(
            base_url=f"http://{name}",
            transport=self.transport,
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
        )

    @property
    def instances(self) -> list[Instance]:
        return self.balancer.instances

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send one request to an instance of this upstream within the total time budget."""
        content = None if json is None else orjson.dumps(json)
        send_headers = dict(headers or {})
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(self.total_timeout):
                response = await self._client.request(
                    method, path, params=params, content=content, headers=send_headers
                )
        except NoInstanceAvailable as exc:
            raise UpstreamUnavailable(self.name, f"No healthy instance of {self.name}") from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise UpstreamTimeout(self.name) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self.name) from exc
        return UpstreamResponse(response.status_code, response.content, response.headers, self.name)

    async def probe(self, instance: Instance, path: str = "/health", timeout: float = 0.5) -> bool:
        """Whether `instance` answers `path` with 2xx within `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                status = await self.transport.probe(instance, path)
        except (TimeoutError, httpx.HTTPError):
            return False
        return 200 <= status < 300

    async def usable_instances(self, path: str = "/health", timeout: float = 0.5) -> int:
        """How many instances answer a probe now (readiness, until health checks run)."""
        results = await asyncio.gather(*(self.probe(i, path, timeout) for i in self.instances))
        return sum(results)

    async def aclose(self) -> None:
        await self._client.aclose()
