"""`GET /admin/upstreams`: what the gateway knows about every instance of every pool, as JSON.

For operators: per instance, whether the balancer uses it and why not (health checks or
outlier ejection), since when, requests in flight, recent latency and error rate, weight and
zone; per pool, panic mode, zone failover and the retry budget. Needs scope `admin`; off
(404) with `server.admin: false`. Reads plain attributes only: no probe, no lock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.auth.policy import Scopes
from bff.errors import BffError
from bff.http.state import request_state
from bff.rendering.errors import error_response
from bff.upstream import Balancer, Instance, PeakEwma, UpstreamPool

ADMIN = Scopes("admin")


def admin_routes(enabled: bool, pools: Mapping[str, UpstreamPool]) -> list[Route]:
    """The route, or none at all when `server.admin` is off."""
    if not enabled:
        return []

    async def upstreams(request: Request) -> Response:
        try:
            ADMIN.check(request_state(request.scope).principal)
        except BffError as error:
            return error_response(error, request.headers.get("accept"))
        return JSONResponse({name: describe_pool(pool) for name, pool in pools.items()})

    return [Route("/admin/upstreams", upstreams, methods=["GET"])]


def describe_pool(pool: UpstreamPool) -> dict[str, Any]:
    now = pool.clock()
    wall = time.time()
    balancer = pool.balancer
    balancer.candidates(now)  # brings panic and failover up to date
    return {
        "balancer": type(balancer).__name__,
        "zone": balancer.zone,
        "usable": pool.usable_count(),
        "panic": balancer.panic,
        "failed_over": balancer.failed_over,
        "retry_budget": {
            "requests_in_flight": pool.budget.requests,
            "retries_in_flight": pool.budget.retries,
            "refused": pool.budget.refused,
        },
        "instances": [describe_instance(i, now, wall, balancer) for i in pool.instances],
    }


def describe_instance(
    instance: Instance, now: float, wall: float, balancer: Balancer | None = None
) -> dict[str, Any]:
    """One instance's state; under `peak_ewma`, also the latency estimate it is balanced on
    now (`peak_latency_ms`, decayed to now), which says why a slow one gets few calls."""
    if instance.ejected(now):
        state, reason, since = "ejected", instance.eject_reason, instance.since
    elif not instance.healthy:
        state, reason, since = "unhealthy", instance.health_reason, instance.since
    else:
        state, reason = "healthy", None
        since = max(instance.since, min(instance.ejected_until, now))
    described = {
        "url": instance.url,
        "zone": instance.zone,
        "weight": instance.weight,
        "state": state,
        "reason": reason,
        "since": round(wall - (now - since), 3) if since else None,
        "ejected_until": round(wall + instance.ejected_until - now, 3)
        if state == "ejected"
        else None,
        "ejections": instance.ejections,
        "consecutive_failures": instance.consecutive_failures,
        "in_flight": instance.in_flight,
        "latency_ms": round(instance.latency * 1000, 3),
        "error_rate": round(instance.error_rate, 4),
        "attempts": instance.attempts,
    }
    if isinstance(balancer, PeakEwma):
        described["peak_latency_ms"] = round(balancer.estimate(instance, now) * 1000, 3)
    return described
