"""The transport stack of a pool: each layer sends one request and returns the reply.

    RetryTransport          outermost, so that each attempt below is seen as its own attempt
      └── (telemetry)       a client span per attempt: its slot is in `UpstreamPool.__init__`
            └── BalancedTransport   the balancer picks an instance per attempt, and that
                                    instance's `ConnectionPool` sends the request; it keeps
                                    the instance's in-flight count, recent latency and error
                                    rate, tells a latency-aware balancer (`observe`) and
                                    outlier detection how the attempt went

Each layer has two ways to send: `send` (the whole answer, for typed clients) and `stream`
(REST passthrough: the body streamed both ways; a layer's part ends when the response closes).

A `Transport` raises only the `TransportError` tree of `bff.upstream.http11` (and
`NoInstanceAvailable`); `UpstreamPool` translates those into `bff.errors` at the package edge.
A failed attempt's error carries the instance it went to (`error.instance`), so the retry
layer can send the next attempt elsewhere (it names the instances to avoid in `AVOID`).
Each instance has its own small connection pool (`max_connections` split over the
instances), so a request's cost does not depend on how many connections exist.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable
from contextvars import ContextVar

import msgspec

from bff.closing import close_every
from bff.upstream.balancer import Balancer, Clock
from bff.upstream.connections import ConnectionPool
from bff.upstream.http11 import MAX_BODY, StaleConnection, TransportError
from bff.upstream.instance import Instance
from bff.upstream.outlier import OutlierDetector
from bff.upstream.request import Request, build_request
from bff.upstream.streaming import StreamedResponse
from bff.upstream.tls import TlsClient

# Instances a retry should not go back to: set by the retry layer for attempts after the first.
AVOID: ContextVar[tuple[Instance, ...]] = ContextVar("bff_upstream_avoid", default=())


class QueueFull(TransportError):
    """Every connection to the instance is busy and its queue is full: nothing was sent."""

    request_sent = False


class Reply(msgspec.Struct, frozen=True):
    """What one attempt got back, and from which instance: a frozen struct, built in C on
    every call (a frozen dataclass costs ten times as much)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes | bytearray
    instance: Instance


class Transport(ABC):
    """One layer of the stack: send a request once (or as the layer decides)."""

    @abstractmethod
    async def send(self, request: Request, deadline: float, attempt: int = 1) -> Reply:
        """The reply to `request` by `deadline` (loop time), or a `TransportError`.

        `attempt` counts the tries of one call (1 = the first): layers below a retry layer
        see each try as its own attempt (client spans, outlier accounting)."""

    @abstractmethod
    async def stream(
        self,
        request: Request,
        deadline: float,
        attempt: int = 1,
        *,
        body: AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float = 30.0,
    ) -> StreamedResponse:
        """As `send`, but the response body is read as the caller consumes it, and a request
        `body` may come from an async iterator (`ConnectionPool.stream` says how). The layer
        ends its part (accounting, span) when the response closes (`on_close`); the caller
        must read the body to its end or `aclose()` it. `instance` on the response says who
        answered."""

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
        max_queue: int = 1000,
        max_body: int = MAX_BODY,
        outliers: OutlierDetector | None = None,
        clock: Clock = time.monotonic,
        tls: TlsClient | None = None,
    ) -> None:
        """`tls`: how every connection of this upstream to an `https://` instance, probes
        included, speaks TLS (one context for the upstream, built at start-up)."""
        self.upstream = upstream
        self.tls = tls  # the upstream's name, for layers that report per upstream
        self.balancer = balancer
        self._observe = balancer.observe if balancer.observes else None
        self.outliers = outliers
        self.clock = clock
        count = max(1, len(balancer.instances))
        per_instance = max(1, math.ceil(max_connections / count))
        # in flight = sending + queued: past this, an attempt fails at once (QueueFull)
        self.max_in_flight = per_instance + math.ceil(max_queue / count)
        self.connect_timeout = connect_timeout
        self._pools: dict[int, ConnectionPool] = {
            id(instance): ConnectionPool(
                instance.url,
                limit=per_instance,
                connect_timeout=connect_timeout,
                max_body=max_body,
                tls=tls,
                upstream=upstream,
            )
            for instance in balancer.instances
        }
        self._probes: dict[int, ConnectionPool] = {}

    def pool_of(self, instance: Instance) -> ConnectionPool:
        return self._pools[id(instance)]

    async def send(self, request: Request, deadline: float, attempt: int = 1) -> Reply:
        """`_take` and the success path of `_account` written out (a latency-aware balancer
        told of the attempt as there): each attempt passes here, and they were two Python
        calls of a handful of lines."""
        instance = self.balancer.choose(AVOID.get() if attempt > 1 else ())
        if instance.in_flight >= self.max_in_flight:
            raise self._queue_full(instance)
        instance.in_flight += 1
        clock = self.clock
        started = clock()
        try:
            status, headers, body = await self._pools[id(instance)].send(request, deadline)
        except TransportError as exc:
            self._failed(instance, started, exc)
            raise
        finally:
            instance.in_flight -= 1
        if status >= 500:
            self._account(instance, started, f"status {status}")
        else:
            now = clock()
            instance.record(False, now - started)
            if self._observe is not None:
                self._observe(instance, now - started, now, False)
            outliers = self.outliers
            if outliers is not None and (instance.consecutive_failures or instance.ejections):
                outliers.succeeded(instance, now)
        return Reply(status, headers, body, instance)

    async def stream(
        self,
        request: Request,
        deadline: float,
        attempt: int = 1,
        *,
        body: AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float = 30.0,
    ) -> StreamedResponse:
        """The instance counts the exchange in flight until its response closes; latency and
        outlier accounting are done at the response head, as for `send`."""
        instance = self._take(attempt)
        started = self.clock()
        try:
            answer = await self._pools[id(instance)].stream(
                request,
                deadline,
                body=body,
                content_length=content_length,
                read_timeout=read_timeout,
            )
        except BaseException as exc:
            instance.in_flight -= 1
            if isinstance(exc, TransportError):
                self._failed(instance, started, exc)
            raise
        status = answer.status
        self._account(instance, started, f"status {status}" if status >= 500 else None)
        answer.instance = instance
        answer.on_close(instance.leave)
        return answer

    def _take(self, attempt: int) -> Instance:
        """The instance for this attempt, counted in flight; `QueueFull` if it has no room."""
        instance = self.balancer.choose(AVOID.get() if attempt > 1 else ())
        if instance.in_flight >= self.max_in_flight:
            raise self._queue_full(instance)
        instance.in_flight += 1
        return instance

    def _queue_full(self, instance: Instance) -> QueueFull:
        error = QueueFull(f"{instance.url}: {instance.in_flight} requests already waiting")
        error.instance = instance  # type: ignore[attr-defined]
        return error

    def _failed(self, instance: Instance, started: float, exc: TransportError) -> None:
        exc.instance = instance  # type: ignore[attr-defined]
        if not isinstance(exc, StaleConnection):  # the server closed an idle connection
            self._account(instance, started, type(exc).__name__)

    def _account(self, instance: Instance, started: float, failure: str | None) -> None:
        now = self.clock()
        instance.record(failure is not None, now - started)
        if self._observe is not None:
            self._observe(instance, now - started, now, failure is not None)
        if self.outliers is None:
            return
        if failure is None:
            if instance.consecutive_failures or instance.ejections:
                self.outliers.succeeded(instance, now)
        else:
            self.outliers.failed(instance, now, failure)

    async def probe(self, instance: Instance, path: str, deadline: float) -> int:
        """GET `path` on one given instance (health checks); returns the status code.

        Probes have a one-connection pool of their own per instance: the same client, but a
        busy pool never queues a probe behind requests and so never fails it for being busy.
        """
        pool = self._probes.get(id(instance))
        if pool is None:
            pool = self._probes[id(instance)] = ConnectionPool(
                instance.url,
                limit=1,
                connect_timeout=self.connect_timeout,
                tls=self.tls,
                upstream=self.upstream,
            )
        request = build_request("GET", path)
        try:
            status, _, _ = await pool.send(request, deadline)
        except StaleConnection:  # the server closed the idle probe connection: not a verdict
            status, _, _ = await pool.send(request, deadline)
        return status

    async def aclose(self) -> None:
        await close_every(pool.aclose for pool in (*self._pools.values(), *self._probes.values()))
