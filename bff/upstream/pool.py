"""`UpstreamPool`: one configured upstream, its instances and its transport stack.

This is the boundary where the HTTP client stops: transport failures become
`UpstreamUnavailable`, time-outs `UpstreamTimeout`, unreadable answers `BadUpstreamResponse`.
HTTP statuses are passed up untouched in `UpstreamResponse`; typed clients decide what a
status means for their service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bff.errors import BadUpstreamResponse, BadUserInput, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.balancer import Balancer, NoInstanceAvailable, make_balancer
from bff.upstream.http11 import (
    MAX_BODY,
    Headers,
    ProtocolViolation,
    StaleConnection,
    TimedOut,
    TransportError,
)
from bff.upstream.instance import Instance
from bff.upstream.request import InvalidRequest, Params, build_request
from bff.upstream.transport import BalancedTransport, Transport


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    headers: Headers
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
        max_body: int = MAX_BODY,
    ) -> None:
        self.name = name
        self.required = required
        self.total_timeout = total_timeout
        self.balancer: Balancer = make_balancer(balancer, instances, zone)
        self.transport = BalancedTransport(
            self.balancer,
            upstream=name,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            max_body=max_body,
        )
        # The stack requests go through; a retry and a telemetry layer will wrap it here.
        self._send: Transport = self.transport

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
        """Send one request to an instance of this upstream within the total time budget.

        A method or header that could split the request is the caller's fault: BadUserInput.
        """
        try:
            request = build_request(method, path, params=params, json=json, headers=headers)
        except InvalidRequest as exc:
            raise BadUserInput(str(exc)) from exc
        deadline = asyncio.get_running_loop().time() + self.total_timeout
        try:
            try:
                reply = await self._send.send(request, deadline)
            except StaleConnection as stale:
                # Until the retry layer: a kept-alive connection the server had closed while
                # idle never carried the request; send it once more, on a fresh attempt.
                if stale.request_sent and not request.idempotent:
                    raise
                reply = await self._send.send(request, deadline, attempt=2)
        except NoInstanceAvailable as exc:
            raise UpstreamUnavailable(self.name, f"No healthy instance of {self.name}") from exc
        except TimedOut as exc:
            raise UpstreamTimeout(self.name) from exc
        except ProtocolViolation as exc:
            raise BadUpstreamResponse(self.name) from exc
        except TransportError as exc:
            raise UpstreamUnavailable(self.name) from exc
        return UpstreamResponse(reply.status, reply.body, Headers(reply.headers), self.name)

    async def probe(self, instance: Instance, path: str = "/health", timeout: float = 0.5) -> bool:
        """Whether `instance` answers `path` with 2xx within `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            status = await self.transport.probe(instance, path, deadline)
        except TransportError:
            return False
        return 200 <= status < 300

    async def usable_instances(self, path: str = "/health", timeout: float = 0.5) -> int:
        """How many instances answer a probe now (readiness, until health checks run)."""
        results = await asyncio.gather(*(self.probe(i, path, timeout) for i in self.instances))
        return sum(results)

    async def aclose(self) -> None:
        await self._send.aclose()
