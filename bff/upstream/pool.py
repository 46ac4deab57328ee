"""`UpstreamPool`: one configured upstream, its instances and its transport stack.

This is the boundary where the HTTP client stops: transport failures become
`UpstreamUnavailable`, time-outs `UpstreamTimeout`, unreadable answers `BadUpstreamResponse`.
HTTP statuses are passed up untouched in `UpstreamResponse`; typed clients decide what a
status means for their service.

The pool owns the per-instance state machines (the balancer, `OutlierDetector`,
`HealthVerdicts`) and wires them: a health or ejection change invalidates the balancer's
candidates. Health checks run only between `start()` and `stop()` (the app's lifespan).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any

from bff.errors import BadUpstreamResponse, BadUserInput, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.balancer import Balancer, Clock, NoInstanceAvailable
from bff.upstream.budget import RetryBudget
from bff.upstream.cache_control import freshness_of
from bff.upstream.header_policy import UsedAnswers, current_answers
from bff.upstream.health import HealthChecker, HealthSettings, HealthVerdicts
from bff.upstream.http11 import (
    MAX_BODY,
    Headers,
    ProtocolViolation,
    StaleConnection,
    TimedOut,
    TransportError,
)
from bff.upstream.instance import Instance
from bff.upstream.outlier import OutlierDetector
from bff.upstream.request import InvalidRequest, Params, Request, build_request
from bff.upstream.response import UpstreamResponse
from bff.upstream.response_cache import BYPASS, STALE, ResponseCache
from bff.upstream.retry import RetryTransport
from bff.upstream.sharing import SHAREABLE, InFlight
from bff.upstream.strategies import make_balancer
from bff.upstream.streaming import StreamedResponse
from bff.upstream.tls import TlsClient
from bff.upstream.transport import BalancedTransport, Reply, Transport


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
        max_queue: int = 1000,
        required: bool = True,
        max_body: int = MAX_BODY,
        attempts: int = 2,
        health: HealthSettings | None = None,
        consecutive_failures: int = 5,
        ejection: float = 30.0,
        clock: Clock = time.monotonic,
        observe: Callable[[Transport, str], Transport] | None = None,
        tls: TlsClient | None = None,
        dedupe: bool = True,
        on_shared: Callable[[str], None] | None = None,
        cache_ttl: float | None = None,
        response_headers: Iterable[str] = (),
        cache: ResponseCache | None = None,
    ) -> None:
        """`observe` wraps the balanced transport in a layer that sees every attempt (the
        telemetry's client span), below the retry layer; the app injects it. `tls` is how
        `https://` instances are reached (default: the system's CAs). `dedupe` shares
        identical GET/HEAD calls in flight at once (`bff.upstream.sharing`); `on_shared(name)`
        counts each call that joined another instead of being sent. `cache_ttl` is the
        freshness of an answer without `Cache-Control`, `response_headers` the fields of its
        answers that may reach the client (`bff.upstream.header_policy`); `cache` answers GETs
        from stored answers (`bff.upstream.response_cache`), shared by the app's pools."""
        self.name = name
        self.required = required
        self.total_timeout = total_timeout
        self.clock = clock
        self.balancer: Balancer = make_balancer(balancer, instances, zone, clock=clock, name=name)
        self.outliers = OutlierDetector(
            instances,
            consecutive_failures=consecutive_failures,
            ejection=ejection,
            on_change=self.balancer.invalidate,
            name=name,
        )
        self.transport = BalancedTransport(
            self.balancer,
            upstream=name,
            max_connections=max_connections,
            max_queue=max_queue,
            connect_timeout=connect_timeout,
            max_body=max_body,
            outliers=self.outliers,
            clock=clock,
            tls=tls,
        )
        self.health = health or HealthSettings()
        self.health_checker = HealthChecker(
            instances,
            self._probe_instance,
            HealthVerdicts(self.health, on_change=self.balancer.invalidate, name=name),
            clock=clock,
        )
        # The stack requests go through, outermost first: RetryTransport(observe(balanced)).
        below_retry: Transport = observe(self.transport, name) if observe else self.transport
        self.budget = RetryBudget()
        self._send: Transport = (
            RetryTransport(below_retry, attempts=attempts, budget=self.budget)
            if attempts > 1
            else below_retry
        )
        # Without a retry layer (`retries.attempts: 1`), a kept-alive connection the server had
        # closed while idle is still sent on once more, as every HTTP client does: the request
        # never reached the server, so this is not a retry. The retry layer does it otherwise.
        self._resend_stale = attempts <= 1
        self.dedupe = dedupe
        self.cache_ttl = cache_ttl
        self.cache = cache
        self.passed_headers = frozenset(name.lower() for name in response_headers)
        self.in_flight: InFlight[UpstreamResponse] = InFlight(
            partial(on_shared, name) if on_shared is not None else None
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
        """Send one request to an instance of this upstream within the total time budget.

        With `dedupe`, a GET or HEAD without a body joins an identical one in flight (same
        target and header lines), above the retries: one call, retried once for all.
        A method or header that could split the request is the caller's fault: BadUserInput.
        """
        try:
            request = build_request(method, path, params=params, json=json, headers=headers)
        except InvalidRequest as exc:
            raise BadUserInput(str(exc)) from exc
        answers = current_answers()
        shareable = request.method in SHAREABLE and not request.body
        if answers is not None and answers.mutation:
            shareable = False  # a mutation's calls are its own: never shared nor cached
        cache = self.cache
        if cache is None:
            if shareable and self.dedupe:
                response, joined = await self._shared(request, True, self.exchange)
            else:  # the common case without dedupe: `exchange` inline, one coroutine fewer
                deadline = asyncio.get_running_loop().time() + self.total_timeout
                try:
                    reply = await self._send.send(request, deadline)
                except (NoInstanceAvailable, TransportError) as exc:
                    reply = await self._after_failure(request, deadline, exc)
                headers = Headers(reply.headers)
                response = UpstreamResponse(reply.status, reply.body, headers, self.name)
                joined = False
        elif shareable and request.method == "GET":
            response, joined = await self._through_cache(cache, request)
        else:
            cache.count(self.name, BYPASS)
            response, joined = await self._shared(request, shareable, self.exchange)
        if answers is not None:
            self._record(answers, response, joined)
        return response

    async def _shared(
        self,
        request: Request,
        shareable: bool,
        start: Callable[[Request], Awaitable[UpstreamResponse]],
    ) -> tuple[UpstreamResponse, bool]:
        """`start(request)`, or the identical call in flight (dedupe); and whether joined."""
        if not (shareable and self.dedupe):
            return await start(request), False
        key = (request.method, request.target, request.fields)
        return await self.in_flight.share(key, lambda: start(request))

    async def _through_cache(
        self, cache: ResponseCache, request: Request
    ) -> tuple[UpstreamResponse, bool]:
        """A stored answer (a stale one is revalidated meanwhile), else the call, stored."""
        answer, result, keys = await cache.lookup(self.name, request)
        cache.count(self.name, result)
        if answer is not None:
            if result == STALE:
                cache.revalidate(self.name, request, answer, keys, self.exchange, self.cache_ttl)
            return cache.served(answer, self.name), False

        async def fetch_and_store(request: Request) -> UpstreamResponse:
            response = await self.exchange(request)
            await cache.store(keys, response, self.cache_ttl)
            return response

        return await self._shared(request, True, fetch_and_store)

    def _record(self, answers: UsedAnswers, response: UpstreamResponse, joined: bool) -> None:
        """What the client's response may say of `response` (`bff.upstream.header_policy`)."""
        headers = response.headers
        passed = self.passed_headers
        values = {name: headers.get_list(name) for name in passed} if passed else None
        fields = headers.decoded()  # read in C below: three lookups per call, no method each
        fresh = freshness_of(fields.get("cache-control"), fields.get("age"), self.cache_ttl)
        answers.record(fields, fresh, passed, cookies=not joined, values=values)

    async def exchange(self, request: Request) -> UpstreamResponse:
        """One built request through the stack (retries, spans, balancing), errors mapped."""
        deadline = asyncio.get_running_loop().time() + self.total_timeout
        try:
            reply = await self._send.send(request, deadline)
        except (NoInstanceAvailable, TransportError) as exc:
            reply = await self._after_failure(request, deadline, exc)
        return UpstreamResponse(reply.status, reply.body, Headers(reply.headers), self.name)

    async def _after_failure(
        self, request: Request, deadline: float, exc: NoInstanceAvailable | TransportError
    ) -> Reply:
        """A stale kept-alive connection sent on once more (without a retry layer), when
        that is safe; otherwise, or when that fails too, the failure as a `bff.errors` one."""
        if (
            isinstance(exc, StaleConnection)
            and self._resend_stale
            and (not exc.request_sent or request.idempotent)
        ):
            try:
                return await self._send.send(request, deadline, attempt=2)
            except (NoInstanceAvailable, TransportError) as again:
                raise self._failure(again) from again
        raise self._failure(exc) from exc

    def _failure(self, exc: NoInstanceAvailable | TransportError) -> Exception:
        """What the caller sees of a failed exchange (the package edge's error mapping)."""
        if isinstance(exc, NoInstanceAvailable):
            return UpstreamUnavailable(self.name, f"No instance of {self.name}")
        if isinstance(exc, TimedOut):
            return UpstreamTimeout(self.name)
        if isinstance(exc, ProtocolViolation):
            return BadUpstreamResponse(self.name)
        return UpstreamUnavailable(self.name)

    async def stream(
        self,
        request: Request,
        deadline: float,
        *,
        body: AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
        read_timeout: float = 30.0,
    ) -> StreamedResponse:
        """A streamed exchange (REST passthrough) through the same stack as `request`:
        balancing, retries (never with a request `body`: it is sent once), client spans.

        Unlike `request`, it raises the transport's own errors (`TransportError`,
        `NoInstanceAvailable`): a relay maps them to statuses of its own (502, 503, 504).
        """
        try:
            return await self._send.stream(
                request,
                deadline,
                body=body,
                content_length=content_length,
                read_timeout=read_timeout,
            )
        except StaleConnection as stale:
            if not self._resend_stale or body is not None:
                raise
            if stale.request_sent and not request.idempotent:
                raise
            return await self._send.stream(request, deadline, 2, read_timeout=read_timeout)

    async def probe(self, instance: Instance, path: str = "/health", timeout: float = 0.5) -> bool:
        """Whether `instance` answers `path` with 2xx within `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            status = await self.transport.probe(instance, path, deadline)
        except TransportError:
            return False
        return 200 <= status < 300

    def usable_count(self) -> int:
        """Instances the balancer would pick outside panic mode: what readiness counts."""
        return self.balancer.usable_count()

    async def start(self) -> None:
        """Probe every instance once (bounded by the probe timeout), then keep probing."""
        await self.health_checker.check_all()
        self.health_checker.start()

    async def stop(self) -> None:
        await self.health_checker.stop()

    async def aclose(self) -> None:
        await self.stop()
        if self.cache is not None:
            await self.cache.aclose()
        await self._send.aclose()

    async def _probe_instance(self, instance: Instance) -> bool:
        return await self.probe(instance, self.health.path, self.health.timeout)
