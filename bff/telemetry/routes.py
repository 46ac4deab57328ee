"""`GET /metrics` (Prometheus text) and `GET /admin/usage` (the metering report, scope admin)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from bff.auth.policy import Scopes
from bff.config.units import parse_duration
from bff.errors import BadUserInput, BffError, UpstreamUnavailable
from bff.http.state import request_state
from bff.metering import usage_report
from bff.rendering.errors import error_response
from bff.telemetry.hub import Telemetry

log = logging.getLogger("bff.metering")

ADMIN = Scopes("admin")
Endpoint = Callable[[Request], Awaitable[Response]]


def metrics_endpoint(telemetry: Telemetry) -> Endpoint:
    async def metrics(request: Request) -> Response:
        await telemetry.metrics.probe()
        return Response(telemetry.metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def usage_endpoint(telemetry: Telemetry) -> Endpoint:
    """Filters: `window` (a duration, default 1h, at most 7d), `client`, `operation`."""

    async def usage(request: Request) -> Response:
        accept = request.headers.get("accept")
        try:
            ADMIN.check(request_state(request.scope).principal)
            params = request.query_params
            try:
                window = parse_duration(params.get("window", "1h"))
            except ValueError as exc:
                raise BadUserInput(f"window: {exc}") from None
            await telemetry.meter.flush()
            try:
                report = await usage_report(
                    telemetry.meter.store,
                    telemetry.schema_fields,
                    window=window,
                    client=params.get("client"),
                    operation=params.get("operation"),
                )
            except Exception as exc:  # the Redis store is away: say so, not a 500
                log.warning("usage report unavailable: %s", exc)
                raise UpstreamUnavailable("redis", "The usage store is unavailable") from None
        except BffError as error:
            return error_response(error, accept)
        return Response(orjson.dumps(report.as_json()), media_type="application/json")

    return usage
