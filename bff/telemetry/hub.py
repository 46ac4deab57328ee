"""`Telemetry`: one app's tracing, metrics, access log and metering, built from its settings.

`create_app` builds one and hands its parts to the four seams: the server stage
(`TelemetryStage`), the executor (`wrap_execute`), the loader base class (`batches.install`)
and each pool's transport stack (`TracingTransport`). At the end of every request the stage
calls `finish`, which records the request metrics, writes the access line and meters the
operation, all from the request's `RequestState`. Where the usage counters live is the app's
shared state's decision: it hands the store over (`usage_store`; memory when none is given).
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema
from opentelemetry.sdk.trace.export import SpanExporter
from redis.asyncio import Redis, RedisCluster
from starlette.types import Scope

from bff.config import Settings
from bff.metering import MemoryUsageStore, Meter, RedisUsageStore, UsageStore
from bff.telemetry.current import Observed
from bff.telemetry.logs import write_access
from bff.telemetry.metrics import Metrics
from bff.telemetry.operation import Operations
from bff.telemetry.redaction import redact_text
from bff.telemetry.tracing import Tracing

# An error response whose body the stage does not read still says what kind of error it was.
STATUS_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
    502: "UPSTREAM_UNAVAILABLE",
    503: "UPSTREAM_UNAVAILABLE",
    504: "UPSTREAM_TIMEOUT",
}


def usage_store(redis: Redis | RedisCluster | None, prefix: str) -> UsageStore:
    """Usage counters in the app's shared Redis under `prefix` (`bff:usage:`), else memory."""
    return MemoryUsageStore() if redis is None else RedisUsageStore(redis, prefix)


def schema_fields(schema: GraphQLSchema) -> list[str]:
    """Every `Type.field` of the schema's object types (introspection types left out)."""
    return sorted(
        f"{name}.{field}"
        for name, type_ in schema.type_map.items()
        if isinstance(type_, GraphQLObjectType) and not name.startswith("__")
        for field in type_.fields
    )


class Telemetry:
    def __init__(
        self,
        settings: Settings,
        schema: GraphQLSchema,
        *,
        exporter: SpanExporter | None = None,
        usage_store: UsageStore | None = None,
    ) -> None:
        self.tracing = Tracing.from_config(settings.telemetry, exporter)
        self.metrics = Metrics()
        self.operations = Operations(schema)
        self.schema_fields = schema_fields(schema)
        self.meter = Meter(usage_store or MemoryUsageStore())

    def start(self) -> None:
        """Start the background work (metering flushes); call on the app's loop."""
        self.meter.start()

    async def aclose(self) -> None:
        await self.meter.aclose()
        if self.tracing is not None:
            self.tracing.shutdown()

    def finish(self, scope: Scope, observed: Observed, status: int, started: float) -> None:
        """Metrics, access line and metering of a request that ended with `status`."""
        seconds = perf_counter() - started
        state = observed.state
        path: str = scope["path"]
        route = observed.route
        name = state.operation
        graphql = state.document_hash is not None  # the operation seam saw an execution
        operation = self.metrics.operations(name) if graphql else ""
        self.metrics.request(route, operation, status, seconds)
        codes = state.error_codes
        if not codes and status >= 400 and status != 499:  # 499: the client went away
            codes.append(STATUS_CODES.get(status, "INTERNAL_SERVER_ERROR"))
        for code in codes:
            self.metrics.error(code)
        principal = state.principal
        client_id = state.client_id or (f"user:{principal.sub}" if principal.sub else "anonymous")
        if status == 429:  # refused by the rate-limit stage: counted here, at the seam
            kind = client_id.partition(":")[0]
            self.metrics.rate_limited_total.labels(RATE_KINDS.get(kind, "other")).inc()
        address = scope.get("client")
        ms = round(seconds * 1_000_000) / 1000  # to the microsecond: `round(x, 3)` formats
        write_access(
            {
                "time": _iso_now(),
                "method": scope["method"],
                "path": redact_text(path),
                "operation": name,
                "client": address[0] if address else None,
                "client_id": client_id,
                "status": status,
                "duration_ms": ms,
                "upstream_calls": state.upstream_calls,
                "error_codes": codes,
                "trace_id": state.trace_id,
                "request_id": state.request_id,
                "document_hash": state.document_hash,
            }
        )
        if graphql:
            self.meter.record(client_id, operation, observed.fields, bool(codes), ms)


# The rate limiter's client id prefixes, as the `bff_rate_limited_total` label says them.
RATE_KINDS = {"user": "user", "key": "api_key", "ip": "ip"}

_second: list[Any] = [0, ""]  # the last whole second formatted, and its text


def _iso_now() -> str:
    """RFC 3339 UTC with milliseconds; the seconds part formatted once a second."""
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((now - whole) * 1000):03d}Z"
