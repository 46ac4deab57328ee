"""`/healthz` (the process is alive) and `/readyz` (it can serve: every required upstream has
an instance that answers its health check)."""

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
    probes: Mapping[str, tuple[str, float]],
    checks: Mapping[str, Callable[[], Awaitable[bool]]] | None = None,
) -> Callable[[Request], object]:
    """`probes` maps an upstream to its health-check path and timeout; `checks` names other
    things the gateway needs (e.g. `token_store`), each an async function saying it is usable."""
    extra = dict(checks or {})

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
        passed = dict(zip(extra, await asyncio.gather(*(c() for c in extra.values())), strict=True))
        ready = all(u["usable"] > 0 for u in upstreams.values() if u["required"])
        ready = ready and all(passed.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready"}
        body["upstreams"] = upstreams
        if passed:
            body["checks"] = passed
        return JSONResponse(body, 200 if ready else 503)

    return readyz
