"""`/healthz` (the process is alive) and `/readyz` (it can serve: every required upstream has
an instance that answers its health check)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

from bff.upstream import UpstreamPool


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(
    pools: Callable[[], Mapping[str, UpstreamPool]],
    probes: Mapping[str, tuple[str, float]],
) -> Callable[[Request], object]:
    """`probes` maps an upstream to its health-check path and timeout."""

    async def readyz(request: Request) -> JSONResponse:
        current = pools()
        names = list(current)
        counts = await asyncio.gather(
            *(current[n].usable_instances(*probes.get(n, ("/health", 0.5))) for n in names)
        )
        upstreams = {
            name: {
                "usable": count,
                "instances": len(current[name].instances),
                "required": current[name].required,
            }
            for name, count in zip(names, counts, strict=True)
        }
        ready = all(u["usable"] > 0 for u in upstreams.values() if u["required"])
        body = {"status": "ready" if ready else "not ready", "upstreams": upstreams}
        return JSONResponse(body, 200 if ready else 503)

    return readyz
