"""Prometheus metrics of the gateway, with bounded labels.

Each app has its own registry (several gateways may run in one process, as the tests do).
Under `bff serve --workers N` the supervisor sets `PROMETHEUS_MULTIPROC_DIR` before the
workers start: prometheus-client then writes every worker's values to files in that
directory, and a scrape of any worker reads all of them, so the numbers add up.

Labels never carry ids or raw paths: the operation label is a name from a bounded set
(`OperationLabels`: unknown names past the first `MAX_OPERATIONS` fold into `other`), the
route label is one of the gateway's route families, upstream and instance come from config.
Label children are cached in dicts, so recording costs a dict lookup and an increment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from bff.errors import CODES
from bff.telemetry.current import current
from bff.telemetry.recorders import counted_recorder, counter_recorder, histogram_recorder

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: half the scrape, no use to a gateway's users

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_OPERATIONS = 100
# upstream x instance x status recorders kept (a config has a few dozen; odd statuses past this
# are recorded all the same, through a recorder made for the one attempt)
MAX_UPSTREAM_RECORDS = 4096
OTHER = "other"
MAX_FALLBACK_REASONS = 20  # distinct `reason` labels of bff_graphql_fallbacks_total
ANONYMOUS_OPERATION = "anonymous"

# Seconds: from a cached lookup (sub-millisecond) to an upstream's total time-out (tens of s).
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
ROUTES = ("/graphql", "/api", "/auth", "/admin", "/metrics", "/healthz", "/readyz", "/graphiql")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


_FIRST_SEGMENTS = {route[1:]: route for route in ROUTES}


def route_of(path: str) -> str:
    """The route family of `path` (a bounded label), `other` for anything else."""
    end = path.find("/", 1)
    return _FIRST_SEGMENTS.get(path[1:] if end < 0 else path[1:end], OTHER)


class OperationLabels:
    """Operation names as label values: the first `limit` distinct valid names, then `other`."""

    def __init__(self, limit: int = MAX_OPERATIONS) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def __call__(self, name: str | None) -> str:
        if name is None:
            return ANONYMOUS_OPERATION
        if name in self._known:
            return name
        if len(self._known) < self.limit and _NAME.fullmatch(name):
            self._known.add(name)
            return name
        return OTHER


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The gateway's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.operations = OperationLabels()
        self.requests = Counter(
            "bff_requests_total",
            "Requests answered, by route family, GraphQL operation and status class.",
            ("route", "operation", "status"),
            registry=registry,
        )
        self.request_duration = Histogram(
            "bff_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            ("route", "operation"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.upstream_requests = Counter(
            "bff_upstream_requests_total",
            "Upstream HTTP attempts, by upstream, instance and status class (`error`: none).",
            ("upstream", "instance", "status"),
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "bff_upstream_duration_seconds",
            "Time of one upstream HTTP attempt.",
            ("upstream", "instance"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.upstream_shared = Counter(
            "bff_upstream_shared_total",
            "Upstream calls not sent because an identical one in flight was shared (dedupe).",
            ("upstream",),
            registry=registry,
        )
        self.cache_requests = Counter(
            "bff_cache_requests_total",
            "Upstream calls asked of the response cache, by result (hit, miss, stale: served "
            "while revalidating, bypass: not cacheable).",
            ("upstream", "result"),
            registry=registry,
        )
        self.upstream_healthy = Gauge(
            "bff_upstream_healthy",
            "1 when the instance is in its pool's rotation, else 0.",
            ("upstream", "instance"),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.batch_size = Histogram(
            "bff_dataloader_batch_size",
            "Keys per dataloader batch (one upstream call each).",
            ("upstream",),
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.rate_limited_total = Counter(
            "bff_rate_limited_total",
            "Requests refused by a rate limit, by kind of client (user, api_key, ip).",
            ("client_kind",),
            registry=registry,
        )
        self.errors = Counter(
            "bff_errors_total",
            "Errors answered, by `extensions.code` (each code a response carried, once).",
            ("code",),
            registry=registry,
        )
        self.redis_up = Gauge(
            "bff_redis_up",
            "1 when the shared-state Redis answered a PING at this scrape, else 0 (only with "
            "redis.url).",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.graphql_fallbacks = Counter(
            "bff_graphql_fallbacks_total",
            "GraphQL executions that left the fast path for plain graphql-core, by reason.",
            ("reason",),
            registry=registry,
        )
        self._fallback_reasons: set[str] = set()
        self._request_children: dict[tuple[str, str, str], Callable[[float], None]] = {}
        self._duration_children: dict[tuple[str, str], Callable[[float], None]] = {}
        self._upstream_records: dict[tuple[str, str, int | None], Callable[[float], None]] = {}
        self._batch_children: dict[str, Callable[[float], None]] = {}
        self._cache_children: dict[tuple[str, str], Callable[[float], None]] = {}
        self._error_children: dict[str, Callable[[float], None]] = {}
        self.health_source: Callable[[], Iterable[tuple[str, str, bool]]] | None = None
        # Whether Redis answers now; set by the app when `redis.url` is configured.
        self.redis_probe: Callable[[], Awaitable[bool]] | None = None

    def request(self, route: str, operation: str, status: int, seconds: float) -> None:
        key = (route, operation, status_class(status))
        inc = self._request_children.get(key)
        if inc is None:
            inc = self._request_children[key] = counter_recorder(self.requests.labels(*key))
        inc(1)
        observe = self._duration_children.get(key[:2])
        if observe is None:
            observe = histogram_recorder(self.request_duration.labels(route, operation))
            self._duration_children[key[:2]] = observe
        observe(seconds)

    def upstream(self, upstream: str, instance: str, status: int | None, seconds: float) -> None:
        """One attempt: its count by status class and its duration, through one recorder
        per (upstream, instance, status) made on first use (statuses are a bounded few)."""
        record = self._upstream_records.get((upstream, instance, status))
        if record is None:
            record = self._upstream_record(upstream, instance, status)
        record(seconds)

    def _upstream_record(
        self, upstream: str, instance: str, status: int | None
    ) -> Callable[[float], None]:
        outcome = "error" if status is None else status_class(status)
        record = counted_recorder(
            self.upstream_requests.labels(upstream, instance, outcome),
            self.upstream_duration.labels(upstream, instance),
        )
        if len(self._upstream_records) < MAX_UPSTREAM_RECORDS:
            self._upstream_records[(upstream, instance, status)] = record
        return record

    def shared(self, upstream: str) -> None:
        """One call that joined an identical call in flight instead of being sent."""
        self.upstream_shared.labels(upstream).inc()

    def cache_request(self, upstream: str, result: str) -> None:
        """One upstream call the response cache answered (`hit`, `stale`) or did not."""
        key = (upstream, result)
        inc = self._cache_children.get(key)
        if inc is None:
            inc = self._cache_children[key] = counter_recorder(self.cache_requests.labels(*key))
        inc(1)

    def batch(self, upstream: str, size: int) -> None:
        observe = self._batch_children.get(upstream)
        if observe is None:
            observe = self._batch_children[upstream] = histogram_recorder(
                self.batch_size.labels(upstream)
            )
        observe(size)

    def error(self, code: str) -> None:
        """One response that carried `code`; a code outside the error tree counts as `other`."""
        inc = self._error_children.get(code)
        if inc is None:
            label = code if code in CODES else OTHER
            inc = self._error_children[code] = counter_recorder(self.errors.labels(label))
        inc(1)

    async def probe(self) -> None:
        """What a scrape asks first: whether Redis answers (`bff_redis_up`)."""
        if self.redis_probe is not None:
            self.redis_up.set(1 if await self.redis_probe() else 0)

    def graphql_fallback(self, reason: str) -> None:
        """One execution on graphql-core; reasons are bounded like operation names."""
        label = reason[:60]
        if label not in self._fallback_reasons:
            if len(self._fallback_reasons) >= MAX_FALLBACK_REASONS:
                label = OTHER
            else:
                self._fallback_reasons.add(label)
        self.graphql_fallbacks.labels(label).inc()

    def scrape(self) -> bytes:
        """The text exposition: this process's registry, or every worker's in multiprocess."""
        if self.health_source is not None:
            for upstream, instance, healthy in self.health_source():
                self.upstream_healthy.labels(upstream, instance).set(1 if healthy else 0)
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def rate_limited(client_kind: str) -> None:
    """Count a request refused by a rate limit (`client_kind`: user, api_key or ip).

    For the rate-limit stage: it runs inside the telemetry stage, which makes the request's
    metrics current; outside a request this does nothing.
    """
    telemetry = current()
    if telemetry is not None:
        kind = client_kind if client_kind in ("user", "api_key", "ip") else OTHER
        telemetry.metrics.rate_limited_total.labels(kind).inc()
