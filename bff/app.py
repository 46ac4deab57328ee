"""The application factory: the one place where the request pipeline is put together.

Stages, outermost first, and why in this order:

0. `RequestStage`: gives the request its `RequestState` (request id, later principal, client
   and trace ids), first of all so that every later stage, route and log line shares them.
1. `ErrorsStage`: the last net, outermost so that a bug in any later stage or route still
   becomes a masked JSON 500 with the detail in the log.
2. `AuthenticationStage`: resolves the principal once per request; a bad token is refused
   here, before any GraphQL parsing or upstream call. (The server span, access log, body
   limit and rate limit of later issues go between 1 and 2: the span and the log must see
   refused requests too, and the rate limit must run before the cost of verifying a token.)

The app is a plain Starlette app: the gateway has a handful of routes and no use for
FastAPI's per-request extras (its middleware costs about 30 µs of CPU a request, measured).

Routes: `/graphql` (GraphQL over HTTP and GraphiQL), `/graphiql/static` (its assets),
`/healthz`, `/readyz`, and `/api` (REST passthrough) when `routes` are configured.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from bff.auth import TokenVerifier
from bff.config import ConfigError, Settings
from bff.graphql.endpoint import GraphQLEndpoint
from bff.graphql.executor import GraphQLExecutor
from bff.http.authentication import AuthenticationStage
from bff.http.errors import ErrorsStage
from bff.http.graphiql import static_app
from bff.http.health import healthz, readyz_endpoint
from bff.http.request_stage import RequestStage
from bff.passthrough import Passthrough
from bff.upstream import Upstreams
from schema import schema
from upstream_clients import Clients

log = logging.getLogger("bff")


def check_upstreams(settings: Settings) -> None:
    """Refuse a config without an upstream the schema calls: better than a 500 per request."""
    missing = [name for name in Clients.upstreams() if name not in settings.upstreams]
    if missing:
        names = ", ".join(missing)
        raise ConfigError([f"upstreams: missing {names} (the schema's fields call every one)"])


def token_verifier(settings: Settings) -> TokenVerifier | None:
    """The verifier of the configured key; `None` (every token refused) without a key."""
    auth = settings.auth
    try:
        key = auth.jwt.verification_key()
    except ValueError:
        log.warning("auth.jwt has no key: every bearer token will be refused")
        return None
    return TokenVerifier(auth.jwt.algorithm, key, auth.issuer, auth.audience)


def create_app(settings: Settings) -> Starlette:
    check_upstreams(settings)
    upstreams = Upstreams.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await upstreams.aclose()

    executor = GraphQLExecutor(schema._schema, introspection=settings.server.introspection)
    graphql = GraphQLEndpoint(executor, upstreams, graphiql=settings.server.graphiql)
    probes = {
        name: (u.health_check.path, u.health_check.timeout)
        for name, u in settings.upstreams.items()
    }
    routes = [
        Route("/graphql", graphql.endpoint, methods=["GET", "POST"]),
        Mount("/graphiql/static", app=static_app(), name="graphiql-static"),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz_endpoint(lambda: upstreams, probes), methods=["GET"]),
    ]
    if settings.routes:
        routes.append(Mount("/api", app=Passthrough.from_settings(settings, upstreams)))
    middleware = [
        Middleware(RequestStage),
        Middleware(ErrorsStage),
        Middleware(AuthenticationStage, verifier=token_verifier(settings)),
    ]
    app = Starlette(lifespan=lifespan, routes=routes, middleware=middleware)
    app.state.settings = settings
    app.state.upstreams = upstreams
    return app
