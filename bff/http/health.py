"""`/healthz` (the process is alive) and `/readyz` (it can serve: every required upstream has
an instance the balancer would use).

Readiness reads the state the health checks and outlier detection keep (no probe per call),
so readiness and routing agree: an instance the balancer will not pick is not counted. A pool
in panic mode still sends requests to its instances, but is not ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

from bff.upstream import UpstreamPool


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(
    pools: Callable[[], Mapping[str, UpstreamPool]],
) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def readyz(request: Request) -> JSONResponse:
        upstreams = {
            name: {
                "usable": pool.usable_count(),
                "instances": len(pool.instances),
                "required": pool.required,
            }
            for name, pool in pools().items()
        }
        ready = all(u["usable"] for u in upstreams.values() if u["required"])
        body = {"status": "ready" if ready else "not ready", "upstreams": upstreams}
        return JSONResponse(body, 200 if ready else 503)

    return readyz
