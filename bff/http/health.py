"""`/healthz` (the process is alive) and `/readyz` (it can serve: every required upstream has
an instance the balancer would use).

Readiness reads the state the health checks and outlier detection keep (no probe per call),
so readiness and routing agree: an instance the balancer will not pick is not counted. A pool
in panic mode still sends requests to its instances, but is not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

from bff.upstream import UpstreamPool


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(
    pools: Callable[[], Mapping[str, UpstreamPool]],
    checks: Mapping[str, Callable[[], Awaitable[bool]]] | None = None,
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """`checks` names other things the gateway needs (e.g. `token_store`), each an async
    function saying whether it is usable now."""
    extra = dict(checks or {})

    async def readyz(request: Request) -> JSONResponse:
        upstreams = {
            name: {
                "usable": pool.usable_count(),
                "instances": len(pool.instances),
                "required": pool.required,
            }
            for name, pool in pools().items()
        }
        passed = dict(zip(extra, await asyncio.gather(*(c() for c in extra.values())), strict=True))
        ready = all(u["usable"] for u in upstreams.values() if u["required"])
        ready = ready and all(passed.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready"}
        body["upstreams"] = upstreams
        if passed:
            body["checks"] = passed
        return JSONResponse(body, 200 if ready else 503)

    return readyz
