"""The application factory: the one place where the request pipeline is put together.

Stages, outermost first, and why in this order:

0. `RequestStage`: gives the request its `RequestState` (request id, later principal, client
   and trace ids) and sets the request id for its log lines (`bff.request_id`), first of all
   so that every later stage, route and log line shares them.
1. `TelemetryStage`: the server span, the request metrics and the access line; right after
   the request stage (it reads the request id) and outside everything else, so refused
   requests (401, 413, 429, a masked 500) are traced, counted and logged too.
2. `ErrorsStage`: the last net, outermost of the stages that refuse or serve, so that a bug in
   any later stage or route still becomes a masked JSON 500 with the detail in the log.
3. `BodyLimitStage`: `server.max_body`; an oversized body is refused (413) before anyone
   reads it, and before a token is verified.
4. `AuthenticationStage`: resolves the principal once per request; a bad token is refused
   here, before any GraphQL parsing or upstream call.
5. `RateLimitStage` (when `rate_limits.enabled`): right after authentication, because the
   budget is keyed by the token subject (SPEC section 7: client = subject, else API key,
   else IP), which only authentication knows. Verifying a token costs microseconds (an
   opaque token's lookup is cached), so checking the budget first would save little. It
   also tells the login throttle (`rate_limits.login`, injected into the token service) the
   client's address, for the REST token endpoints and the GraphQL mutations alike.
6. `PrefixStage` (when `routes` are configured): `/api/...` goes to REST passthrough from
   here, past Starlette's router and exception middleware, which it has no use for (it
   matches its own routes and renders its own errors) and which cost it about 7 % of a GET.
7. `ExactStage`: `GET`/`POST /graphql` goes to the GraphQL endpoint from here, past the
   router for the same reason (it renders its own errors); the route stays for the rest.

Telemetry's other seams are wired here too, by injection: the executor's operation span, the
batch hook each request's loaders get, and each pool's client-span transport layer. Nothing
on the data path imports telemetry.

The graph is a value (`bff.graph.Graph`): the one given, or the one `graph` names
(`bff.graphs`), joined with the engine's token mutations. The engine imports no graph.

The app is a plain Starlette app: the gateway has a handful of routes and no use for
FastAPI's per-request extras (its middleware costs about 30 µs of CPU a request, measured).

Routes: `/graphql` (GraphQL over HTTP and GraphiQL), `/graphiql/static` (its assets),
`/healthz`, `/readyz`, the token endpoints `/auth/token`, `/auth/refresh`, `/auth/revoke`,
`/.well-known/jwks.json`, `/admin/upstreams` (unless `server.admin` is off), `/metrics`
(Prometheus), `/admin/usage` (metering, scope admin), `/openapi.json` and `/docs` (unless
`server.docs` is off), and `/api` (REST passthrough, stage 6) when `routes` are configured.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from bff.auth.runtime import AuthRuntime
from bff.closing import close_every
from bff.config import ConfigError, Settings
from bff.graph import Graph
from bff.graphql.executor import GraphQLExecutor
from bff.graphs import served_graph
from bff.http.admin_upstreams import admin_routes
from bff.http.authentication import AuthenticationStage
from bff.http.body_limit import BodyLimitStage
from bff.http.errors import ErrorsStage
from bff.http.exact import ExactStage
from bff.http.graphiql import static_app
from bff.http.health import healthz, readyz_endpoint
from bff.http.jwks_fetch import JwksFetcher
from bff.http.openapi import docs_routes
from bff.http.prefix import PrefixStage
from bff.http.rate_limit import RateLimitStage
from bff.http.request_stage import RequestStage
from bff.limits import (
    ClientIdentifier,
    MemoryRateStore,
    QueryLimits,
    RateLimiter,
    RateStore,
    RedisRateStore,
)
from bff.limits.login import LoginThrottle
from bff.passthrough import Passthrough
from bff.persisted import (
    DocumentsError,
    DocumentStore,
    MemoryDocumentStore,
    PersistedQueries,
    RedisDocumentStore,
    load_manifest,
)
from bff.rendering.errors import http_exception_response
from bff.request_id import install_log_records
from bff.routes.auth import auth_routes
from bff.routes.graphql import GraphQLEndpoint
from bff.shared_state import Client, SharedState, get_many, put_many
from bff.telemetry.batches import batch_scope
from bff.telemetry.cache import cache_observer
from bff.telemetry.hub import Telemetry, usage_store
from bff.telemetry.operation import wrap_execute
from bff.telemetry.routes import metrics_endpoint, usage_endpoint
from bff.telemetry.stage import TelemetryStage
from bff.telemetry.transport import TracingTransport
from bff.upstream import Upstreams
from bff.upstream.cache_store import CacheStore, MemoryCacheStore, RedisCacheStore
from bff.upstream.item_cache import SharedItems
from bff.upstream.response_cache import ResponseCache

log = logging.getLogger("bff")

GRAPHQL_METHODS = ["GET", "POST"]


def check_manifest(settings: Settings) -> dict[str, str] | None:
    """The `persisted_queries.manifest` documents; a bad manifest stops the start."""
    path = settings.persisted_queries.manifest
    if path is None:
        return None
    try:
        return load_manifest(path)
    except DocumentsError as error:
        raise ConfigError([f"persisted_queries.manifest: {path}: {error}"]) from None


def redis_answers(redis: Client) -> Callable[[], Awaitable[bool]]:
    """Whether `redis` answers a PING now (within the client's short timeouts): `bff_redis_up`."""

    async def answers() -> bool:
        try:
            return bool(await redis.ping())
        except Exception:  # unreachable, timed out, refused: all say "down"
            return False

    return answers


def response_cache(
    settings: Settings, redis: Client | None, on_result: Callable[[str, str], None]
) -> ResponseCache | None:
    """The response cache every pool shares (`cache`), in memory or in the shared Redis
    (answers and batch items both; cluster-safe reads)."""
    config = settings.cache
    if not config.enabled:
        return None
    prefix = settings.redis.key_prefix
    store: CacheStore = MemoryCacheStore(config.max_entries)
    items = None
    if config.store == "redis" and redis is not None:
        client = redis
        store = RedisCacheStore(
            lambda keys: get_many(client, keys),
            lambda key, value, ms: client.set(key, value, px=ms),
        )
        items = SharedItems(
            lambda keys: get_many(client, keys), lambda entries: put_many(client, entries), prefix
        )
    return ResponseCache(
        store,
        prefix=prefix,
        max_entry_size=config.max_entry_size,
        max_items=config.max_entries,
        on_result=on_result,
        shared_items=items,
    )


def persisted_queries(settings: Settings, store: DocumentStore) -> PersistedQueries:
    """APQ and persisted-only mode, with the manifest loaded."""
    return PersistedQueries(store, settings.persisted_queries, check_manifest(settings))


def document_store(shared: SharedState) -> DocumentStore:
    """APQ and persisted documents: in Redis when the shared state is, else in memory."""
    if shared.redis is None:
        return MemoryDocumentStore()
    return RedisDocumentStore(shared.redis, shared.namespace("pq"))


def rate_store(shared: SharedState) -> RateStore:
    if shared.redis is None:
        return MemoryRateStore()
    return RedisRateStore(shared.redis, shared.namespace("rl"))


def create_app(
    settings: Settings,
    graph: Graph | None = None,
    *,
    graphiql_headers: Mapping[str, str] | None = None,
    telemetry: Telemetry | None = None,
) -> Starlette:
    """The gateway serving `graph` (else the one `settings.graph` names, with the sources);
    `graphiql_headers` prefill GraphiQL's header editor (the demo's token); `telemetry`
    replaces the one built from `settings` (tests' exporters). A config the graph cannot run
    on (an upstream it calls is missing) is a `ConfigError` here, not a 500 per request."""
    served = served_graph(settings, graph)
    install_log_records()
    for note in served.notes:  # e.g. an OpenAPI operation left out, once at start
        log.warning(note)
    # The one owner of the Redis connection: every store below gets its namespace from it.
    shared = SharedState.from_settings(settings)
    persisted = persisted_queries(settings, document_store(shared))
    usage = usage_store(shared.redis, shared.namespace("usage"))
    telemetry = telemetry or Telemetry(settings, served.schema, usage_store=usage)
    metrics = telemetry.metrics
    upstreams = Upstreams.from_settings(
        settings,
        observe=TracingTransport,
        on_shared=metrics.shared,
        cache=response_cache(settings, shared.redis, cache_observer(metrics)),
    )
    telemetry.metrics.health_source = lambda: (
        (name, instance.url, instance.healthy)
        for name, pool in upstreams.items()
        for instance in pool.instances
    )
    rate_limits = settings.rate_limits
    # the rate limits' and the login throttle's budgets, in one store
    budgets = rate_store(shared) if rate_limits.enabled else None
    throttle = None
    if budgets is not None and rate_limits.login.enabled:
        throttle = LoginThrottle(budgets, rate_limits)
    fetcher = JwksFetcher()
    auth = AuthRuntime.from_settings(settings, fetcher, shared, throttle)
    closers: list[Callable[[], Awaitable[None]]] = [upstreams.aclose, auth.aclose, fetcher.aclose]
    if shared.redis is not None:
        telemetry.metrics.redis_probe = redis_answers(shared.redis)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Every instance is probed once before serving (bounded by its probe timeout), so
        # routing and /readyz start from facts; the checks then run until shutdown.
        telemetry.start()
        await upstreams.start()
        try:
            yield
        finally:
            # every closer runs whatever one raised: nothing left open past the loop
            await close_every([*closers, telemetry.aclose, shared.aclose])

    limits = settings.limits
    executor = GraphQLExecutor(
        served.schema,
        introspection=settings.server.introspection,
        observe=wrap_execute,
        max_tokens=limits.max_tokens,
        max_fields=limits.max_fields,
    )
    executor.stats.on_fallback = telemetry.metrics.graphql_fallback
    graphql = GraphQLEndpoint(
        executor,
        served,
        upstreams,
        graphiql=settings.server.graphiql,
        graphiql_headers=graphiql_headers,
        tokens=auth.service,
        limits=QueryLimits(served.schema, limits) if limits.enabled else None,
        persisted=persisted,
        observe_batch=batch_scope,
    )
    routes = [
        Route("/graphql", graphql.endpoint, methods=GRAPHQL_METHODS),
        Mount("/graphiql/static", app=static_app(), name="graphiql-static"),
        Route("/healthz", healthz, methods=["GET"]),
        Route(
            "/readyz",
            readyz_endpoint(lambda: upstreams, {"token_store": auth.store_ready}),
            methods=["GET"],
        ),
        *auth_routes(auth, upstreams),
        *admin_routes(settings.server.admin, upstreams),
        Route("/metrics", metrics_endpoint(telemetry), methods=["GET"]),
        Route("/admin/usage", usage_endpoint(telemetry), methods=["GET"]),
        *docs_routes(settings),  # /openapi.json, /docs (server.docs)
    ]
    middleware = [
        Middleware(RequestStage),
        Middleware(TelemetryStage, telemetry=telemetry),
        Middleware(ErrorsStage),
        Middleware(BodyLimitStage, max_body=settings.server.max_body),
        Middleware(AuthenticationStage, authenticator=auth.authenticator),
    ]
    limiter = None
    if budgets is not None:
        limiter = RateLimiter(budgets, rate_limits)
        identifier = ClientIdentifier(
            settings.server.trusted_proxies, rate_limits.api_key_header, rate_limits.api_keys
        )
        # After authentication: the budget is keyed by the token subject (see the docstring).
        middleware.append(Middleware(RateLimitStage, limiter=limiter, identifier=identifier))
    if settings.routes:
        passthrough = Passthrough.from_settings(settings, upstreams)
        middleware.append(Middleware(PrefixStage, prefix="/api", target=passthrough))
    middleware.append(
        Middleware(ExactStage, path="/graphql", methods=GRAPHQL_METHODS, endpoint=graphql.endpoint)
    )
    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_exception_response},
    )
    app.state.settings = settings
    app.state.graph = served
    app.state.upstreams = upstreams
    app.state.telemetry = telemetry
    app.state.auth = auth
    app.state.shared = shared  # the Redis client every store shares (None: memory)
    app.state.limiter = limiter  # `limiter.rejected`: refusals so far
    app.state.login_throttle = throttle
    app.state.fast_path_stats = executor.stats  # fallbacks to graphql-core, by reason
    return app
