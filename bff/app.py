"""The application factory: the one place where the request pipeline is put together.

Stages, outermost first, and why in this order:

0. `RequestStage`: gives the request its `RequestState` (request id, later principal, client
   and trace ids), first of all so that every later stage, route and log line shares them.
1. `ErrorsStage`: the last net, outermost so that a bug in any later stage or route still
   becomes a masked JSON 500 with the detail in the log.
2. `BodyLimitStage`: `server.max_body`; an oversized body is refused (413) before anyone
   reads it, and before a token is verified. (The server span and access log of later issues
   go between 1 and 2: they must see refused requests too.)
3. `AuthenticationStage`: resolves the principal once per request; a bad token is refused
   here, before any GraphQL parsing or upstream call.
4. `RateLimitStage` (when `rate_limits.enabled`): right after authentication, because the
   budget is keyed by the token subject (SPEC section 7: client = subject, else API key,
   else IP), which only authentication knows. Verifying a token costs microseconds of CPU
   and no I/O, so checking the budget first would save little.

The app is a plain Starlette app: the gateway has a handful of routes and no use for
FastAPI's per-request extras (its middleware costs about 30 µs of CPU a request, measured).

Routes: `/graphql` (GraphQL over HTTP and GraphiQL), `/graphiql/static` (its assets),
`/healthz`, `/readyz`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from bff.auth import TokenVerifier
from bff.config import ConfigError, Settings
from bff.graphql.endpoint import GraphQLEndpoint
from bff.graphql.executor import GraphQLExecutor
from bff.http.authentication import AuthenticationStage
from bff.http.body_limit import BodyLimitStage
from bff.http.errors import ErrorsStage
from bff.http.graphiql import static_app
from bff.http.health import healthz, readyz_endpoint
from bff.http.rate_limit import RateLimitStage
from bff.http.request_stage import RequestStage
from bff.limits import (
    ClientIdentifier,
    MemoryRateStore,
    QueryLimits,
    RateLimiter,
    RateStore,
    RedisRateStore,
    RespClient,
)
from bff.persisted import (
    DocumentsError,
    DocumentStore,
    MemoryDocumentStore,
    PersistedQueries,
    RedisDocumentStore,
    load_manifest,
)
from bff.shared_state import connect_redis, redis_url
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


def check_manifest(settings: Settings) -> dict[str, str] | None:
    """The `persisted_queries.manifest` documents; a bad manifest stops the start."""
    path = settings.persisted_queries.manifest
    if path is None:
        return None
    try:
        return load_manifest(path)
    except DocumentsError as error:
        raise ConfigError([f"persisted_queries.manifest: {path}: {error}"]) from None


def persisted_queries(settings: Settings, store: DocumentStore) -> PersistedQueries:
    """APQ and persisted-only mode, with the manifest loaded."""
    return PersistedQueries(store, settings.persisted_queries, check_manifest(settings))


def create_app(settings: Settings) -> Starlette:
    check_upstreams(settings)
    url = redis_url(settings)
    redis = connect_redis(url) if url is not None else None
    persisted = persisted_queries(
        settings, RedisDocumentStore(redis) if redis is not None else MemoryDocumentStore()
    )
    upstreams = Upstreams.from_settings(settings)

    closers: list[Callable[[], Awaitable[None]]] = [upstreams.aclose]
    if redis is not None:
        closers.append(redis.aclose)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for close in closers:
            await close()

    limits = settings.limits
    executor = GraphQLExecutor(
        schema._schema, introspection=settings.server.introspection, max_tokens=limits.max_tokens
    )
    graphql = GraphQLEndpoint(
        executor,
        upstreams,
        graphiql=settings.server.graphiql,
        limits=QueryLimits(schema._schema, limits) if limits.enabled else None,
        persisted=persisted,
    )
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
    middleware = [
        Middleware(RequestStage),
        Middleware(ErrorsStage),
        Middleware(BodyLimitStage, max_body=settings.server.max_body),
        Middleware(AuthenticationStage, verifier=token_verifier(settings)),
    ]
    limiter = None
    rate_limits = settings.rate_limits
    if rate_limits.enabled:
        store: RateStore = MemoryRateStore()
        if url is not None:
            resp = RespClient(url)
            store = RedisRateStore(resp)
            closers.append(resp.aclose)
        limiter = RateLimiter(store, rate_limits)
        identifier = ClientIdentifier(
            settings.server.trusted_proxies, rate_limits.api_key_header, rate_limits.api_keys
        )
        # After authentication: the budget is keyed by the token subject (see the docstring).
        middleware.append(Middleware(RateLimitStage, limiter=limiter, identifier=identifier))
    app = Starlette(lifespan=lifespan, routes=routes, middleware=middleware)
    app.state.settings = settings
    app.state.upstreams = upstreams
    app.state.limiter = limiter  # `limiter.rejected`: the count behind bff_rate_limited_total
    return app
