"""`/demo/services`: stop, slow or break one sample service of a running `bff demo`.

Only the demo has these routes, and only a token with scope `admin` may use them (the demo
prints one). `GET /demo/services` lists the instances; `POST /demo/services/{name}/{index}`
sets one instance's state from a JSON body, every field optional:
`{"state": "down"}` stops it, `{"latency": "800ms", "failure_rate": 0.5}` restarts it slowed and
failing half its requests, `{}` (or `{"state": "up"}`) brings it back healthy.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.auth.policy import Scopes
from bff.config.units import parse_duration
from bff.demo.fleet import DemoFleet, FleetError
from bff.errors import BadUserInput, BffError, NotFound
from bff.http.state import request_state
from bff.rendering.errors import error_response

ADMIN = Scopes("admin")
PATH = "/demo/services"


def parse_change(body: bytes) -> dict[str, Any]:
    """The body of a POST as `DemoFleet.set` keywords; `BadUserInput` naming the bad field."""
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise BadUserInput('the body is not JSON; send e.g. {"state": "down"}') from None
    if not isinstance(data, dict):
        raise BadUserInput("the body must be a JSON object")
    unknown = set(data) - {"state", "latency", "failure_rate"}
    if unknown:
        raise BadUserInput(f"unknown fields {sorted(unknown)}; use state, latency, failure_rate")
    state = data.get("state", "up")
    if state not in ("up", "down"):
        raise BadUserInput("state: must be up or down")
    try:
        latency = parse_duration(data.get("latency", 0))
    except ValueError as error:
        raise BadUserInput(f"latency: {error}") from None
    rate = data.get("failure_rate", 0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise BadUserInput("failure_rate: must be a number from 0 to 1")
    if latency < 0 or latency > 60:
        raise BadUserInput("latency: must be from 0 to 60s")
    return {"up": state == "up", "latency": latency, "failure_rate": float(rate)}


def control_routes(fleet: DemoFleet) -> list[Route]:
    """The demo's control routes over `fleet`."""

    def refused(request: Request, error: BffError) -> Response:
        return error_response(error, request.headers.get("accept"))

    async def listing(request: Request) -> Response:
        try:
            ADMIN.check(request_state(request.scope).principal)
        except BffError as error:
            return refused(request, error)
        return JSONResponse([instance.describe() for instance in fleet.instances])

    async def change(request: Request) -> Response:
        try:
            ADMIN.check(request_state(request.scope).principal)
            change = parse_change(await request.body())
            name, index = request.path_params["name"], request.path_params["index"]
            fleet.find(name, index)
        except FleetError as error:
            return refused(request, NotFound(str(error)))
        except BffError as error:
            return refused(request, error)
        try:  # starting a service waits for its health check: off the event loop
            instance = await asyncio.to_thread(fleet.set, name, index, **change)
        except FleetError as error:
            return JSONResponse({"error": str(error)}, 503)
        return JSONResponse(instance.describe())

    return [
        Route(PATH, listing, methods=["GET"]),
        Route(PATH + "/{name}/{index:int}", change, methods=["POST"]),
    ]
