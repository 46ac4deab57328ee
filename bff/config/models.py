"""The typed shape of `bff.yaml` (SPEC section 9): one frozen model per section.

Every model forbids unknown keys (a typo must not silently fall back to a default) and is
frozen (config is read once at start-up; nothing may change it behind the running gateway).
Each field carries a description: `bff.config.reference` turns them into docs/config.md.
Checks that span several keys raise `problems_error` so each problem is reported at its key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bff.config.auth_models import AuthConfig, JwtConfig, TrustedIssuer
from bff.config.base import HttpUrl, IpNetwork, Name, NonBlank, Problem, Section, problems_error
from bff.config.limit_models import (
    LimitsConfig,
    PersistedQueriesConfig,
    RateLimitRule,
    RateLimitsConfig,
)
from bff.config.paths import TypeLabel
from bff.config.state_models import (
    MemcachedConfig,
    RedisConfig,
    RedisSentinelConfig,
    RedisTLSConfig,
)
from bff.config.units import ByteSize, Duration
from bff.config.upstream_models import (
    HealthCheckConfig,
    InstanceConfig,
    OutlierConfig,
    RetriesConfig,
    TimeoutConfig,
    TlsFilesConfig,
    UpstreamConfig,
    UpstreamTlsConfig,
)

__all__ = [
    "AuthConfig",
    "HealthCheckConfig",
    "InstanceConfig",
    "JwtConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MemcachedConfig",
    "OutlierConfig",
    "PersistedQueriesConfig",
    "RateLimitRule",
    "RateLimitsConfig",
    "RedisConfig",
    "RedisSentinelConfig",
    "RedisTLSConfig",
    "RetriesConfig",
    "RouteConfig",
    "RouteScopes",
    "ServerConfig",
    "Settings",
    "TelemetryConfig",
    "TelemetryTlsConfig",
    "TimeoutConfig",
    "TlsFilesConfig",
    "TrustedIssuer",
    "UpstreamConfig",
    "UpstreamTlsConfig",
]


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port the gateway listens on.")
    graphiql: bool = Field(True, description="Serve GraphiQL to browsers on GET /graphql.")
    introspection: bool = Field(True, description="Answer GraphQL introspection queries.")
    docs: bool = Field(
        True,
        description="Serve `GET /openapi.json` (an OpenAPI 3.1 document of the REST endpoints "
        "and passthrough routes) and `GET /docs` (an interactive page for it, from the "
        "gateway's own assets); false answers 404 on both. Independent of `server.graphiql`.",
    )
    zone: str | None = Field(
        None, description="Zone of this gateway; instances in the same zone are preferred."
    )
    admin: bool = Field(
        True,
        description="Serve `GET /admin/upstreams` (the pools' state) to tokens with scope "
        "`admin`; false answers 404.",
    )
    max_body: ByteSize = Field(
        1_000_000, ge=1, description="Largest request body accepted; larger ones get 413."
    )
    trusted_proxies: list[IpNetwork] = Field(
        default_factory=list,
        description="Addresses or CIDR networks whose X-Forwarded-For is believed when "
        "identifying the client; empty trusts none.",
    )
    workers: int = Field(1, ge=1, description="Worker processes of `bff serve`.")
    drain_timeout: Duration = Field(
        30.0,
        gt=0,
        le=3600,
        description="On SIGTERM the gateway stops accepting connections and lets in-flight "
        "requests finish for up to this long, then cancels them and exits.",
    )
    max_header_size: ByteSize = Field(
        32 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request head (request line and header fields) accepted; a larger "
        "one gets 431 and the connection is closed, before anything of it goes upstream.",
    )
    max_header_count: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Most header fields a request may have; more gets 431, as for "
        "`max_header_size`.",
    )
    header_timeout: Duration = Field(
        10.0,
        gt=0,
        le=3600,
        description="Time a client has to send a whole request head, from its first byte (or "
        "from connecting); past it the connection is closed.",
    )
    body_timeout: Duration = Field(
        30.0,
        gt=0,
        le=3600,
        description="Time a request body may go without a byte arriving; past it the "
        "connection is closed. Time the gateway itself is not reading does not count.",
    )
    idle_timeout: Duration = Field(
        60.0,
        gt=0,
        le=3600,
        description="Time a keep-alive connection may wait for its next request; past it the "
        "connection is closed.",
    )
    max_connections: int = Field(
        10_000,
        ge=1,
        description="Open client connections per worker; a connection beyond them is answered "
        "503 (with `Connection: close`) at its first request, except `GET /healthz`.",
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _method(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().upper()
        if value not in _METHODS:
            raise ValueError(f"not an HTTP method; use one of {', '.join(_METHODS)}")
    return value


HttpMethod = Annotated[str, BeforeValidator(_method), TypeLabel("HTTP method")]


def _scope(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError("not a scope; scopes are single words without spaces, e.g. orders:read")
    return value


class RouteScopes(Section):
    scopes: list[Annotated[str, AfterValidator(_scope), TypeLabel("scope")]] = Field(
        min_length=1, description="Scopes the caller must all hold."
    )


def _auth_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "~level"
    if isinstance(value, dict | RouteScopes):
        return "~scopes"
    return None


# A discriminated union, so a bad `{scopes: ...}` mapping reports only the mapping's problems.
# Tags start with "~": pydantic puts them in error locations and `paths` drops such parts.
RouteAuth = Annotated[
    Annotated[Literal["public", "authenticated"], Tag("~level")]
    | Annotated[RouteScopes, Tag("~scopes")],
    Discriminator(
        _auth_kind,
        custom_error_type="route_auth",
        custom_error_message="must be public, authenticated or {scopes: [...]}",
    ),
]


# Characters a path prefix may hold as is: RFC 3986 pchar (unescaped) and "/".
_PATH_PREFIX = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")


def _path_prefix(value: str) -> str:
    """A plain absolute path, stored without its trailing slash (`/` stays `/`).

    The passthrough joins it verbatim to a client's normalised path, so it must already be
    canonical: no escapes, no dot or empty segments, nothing a parser could read two ways.
    """
    if not value.startswith("/"):
        raise ValueError("must be an absolute path; start it with '/', e.g. /v2/catalog")
    if "?" in value or "#" in value:
        raise ValueError(
            "a path prefix cannot have a query or fragment; remove the part after ? or #"
        )
    if "\\" in value:
        raise ValueError("must not contain a backslash; separate segments with '/'")
    if "%" in value:
        raise ValueError("must not contain percent-escapes; write the path in plain characters")
    if "//" in value:
        raise ValueError("must not have an empty segment (//); use single slashes")
    if ".." in value or "/./" in f"{value}/":
        raise ValueError("must not contain '..' or a '.' segment; write the path it means")
    if not _PATH_PREFIX.fullmatch(value):
        raise ValueError(
            "has a character a path cannot carry unescaped; use letters, digits and "
            "- . _ ~ ! $ & ' ( ) * + , ; = : @"
        )
    return value.rstrip("/") or "/"


PathPrefix = Annotated[str, AfterValidator(_path_prefix), TypeLabel("path")]

_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What the gateway frames or decides itself: no route can pass the upstream's own.
_NEVER_PASSED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "x-request-id",
    }
)


def _response_header(value: str) -> str:
    """A field name, lower-cased: the passthrough compares names in lower case."""
    if not _FIELD_NAME.fullmatch(value):
        raise ValueError("not a header field name; use letters, digits and - (e.g. Set-Cookie)")
    name = value.lower()
    if name in _NEVER_PASSED:
        raise ValueError(
            "is a field the gateway frames or sets itself (hop-by-hop, framing, Date, "
            "X-Request-Id); remove it"
        )
    return name


ResponseHeader = Annotated[str, AfterValidator(_response_header), TypeLabel("header name")]


class RouteConfig(Section):
    name: Name = Field(description="Path segment of the route: requests to /api/{name}/...")
    upstream: Name = Field(description="Upstream (a key of `upstreams`) the route forwards to.")
    methods: list[HttpMethod] = Field(
        default_factory=lambda: ["GET"], min_length=1, description="HTTP methods allowed."
    )
    auth: RouteAuth = Field(
        "authenticated",
        description="Who may call: `public`, `authenticated`, or `{scopes: [...]}`.",
    )
    forward_authorization: bool = Field(
        False, description="Forward the client's Authorization header to the upstream."
    )
    timeout: Annotated[Duration | None, TypeLabel("duration")] = Field(
        None,
        gt=0,
        description="Budget for sending the request and receiving the response head; "
        "default: the upstream's `timeout.total`.",
    )
    strip_prefix: bool = Field(
        True,
        description="Drop `/api/{name}` from the path: `/api/{name}/x` reaches `/x` on the "
        "upstream. `false` forwards the path as the client addressed it, `/api/{name}/x`, for "
        "upstreams that serve the gateway's paths.",
    )
    rewrite: Annotated[PathPrefix | None, TypeLabel("path")] = Field(
        None,
        description="Path that replaces `/api/{name}`: with `/v2/catalog`, "
        "`/api/{name}/products/1` reaches `/v2/catalog/products/1` and `/api/{name}` reaches "
        "`/v2/catalog`. Joined to the client's path after normalisation, so no request "
        "leaves it; the query string is unchanged. Plain characters only (no `%`, `..`, `//`, "
        "`?`); a trailing slash is dropped. Not with `strip_prefix: false`.",
    )

    response_headers: list[ResponseHeader] = Field(
        default_factory=list,
        description="Fields of the upstream's answer that the gateway withholds by default "
        "but this route passes to the client: `Set-Cookie`, and `Server`, `X-Powered-By` or "
        "`Via` if the route must show them. Other end-to-end fields pass anyway; hop-by-hop "
        "ones never do.",
    )

    @model_validator(mode="after")
    def _rewrite_needs_stripping(self) -> RouteConfig:
        if self.rewrite is not None and not self.strip_prefix:
            raise problems_error(
                [
                    Problem(
                        ("rewrite",),
                        "cannot be combined with strip_prefix: false (the rewrite replaces the "
                        "stripped /api/{name}); remove one of the two",
                    )
                ]
            )
        return self


_ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """`value` with each `${NAME}` replaced by the variable's value (`$${` is a literal `${`).

    Raises `ValueError` naming the variable, never quoting a value.
    """

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if not _ENV_NAME.match(name):
            raise ValueError(f"${{{name}}} is not a variable name; write ${{NAME}}")
        if name not in env:
            raise ValueError(
                f"environment variable {name} is not set; export it, or write $${{ for a "
                "literal ${"
            )
        return env[name]

    return _ENV_REFERENCE.sub(one, value)


class TelemetryTlsConfig(TlsFilesConfig):
    """TLS to an `https://` collector."""


class TelemetryConfig(Section):
    service_name: NonBlank = Field(
        "bff",
        description="`service.name` of exported traces; unset, `OTEL_SERVICE_NAME` if set.",
    )
    exporter: Literal["otlp_http", "otlp_grpc", "console", "none"] = Field(
        "none", description="Where traces go."
    )
    endpoint: HttpUrl = Field(
        "http://127.0.0.1:4318",
        description="Collector base URL; `/v1/traces` is appended for otlp_http. Unset, "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` if set. `https://` uses TLS (see `tls`).",
    )
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Share of traces kept, 0 to 1.")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Headers sent with every export (gRPC metadata for otlp_grpc), such as a "
        "collector's API key. `${NAME}` in a value is replaced by environment variable NAME "
        "when the config is loaded (`$${` for a literal `${`), so keys stay out of the file; "
        "values never appear in logs or messages. Unset, `OTEL_EXPORTER_OTLP_HEADERS` "
        "(`name=value,name2=value2`) if set.",
    )
    compression: Literal["gzip", "none"] = Field(
        "gzip",
        description="Compression of export bodies. Unset, `OTEL_EXPORTER_OTLP_COMPRESSION` if set.",
    )
    timeout: Duration = Field(
        10.0,
        gt=0,
        description="Time one export may take before it fails (its spans are dropped). Unset, "
        "`OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds) if set.",
    )
    tls: TelemetryTlsConfig | None = Field(
        None,
        description="TLS to an `https://` endpoint: a private CA, a client certificate. Unset "
        "keys come from `OTEL_EXPORTER_OTLP_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` "
        "and `OTEL_EXPORTER_OTLP_CLIENT_KEY` if set; otherwise the system's trusted CAs.",
    )

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_from_env(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, Mapping):
            return value
        env = (info.context or {}).get("env")
        environ: Mapping[str, str] = os.environ if env is None else env
        problems: list[Problem] = []
        expanded: dict[Any, Any] = {}
        for name, raw in value.items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                problems.append(
                    Problem((str(name),), "not a header name; use letters, digits and '-'")
                )
                continue
            if isinstance(raw, SecretStr):
                raw = raw.get_secret_value()
            if not isinstance(raw, str):
                problems.append(Problem((name,), "not a string; quote the value"))
                continue
            try:
                text = expand_env(raw, environ)
            except ValueError as exc:
                problems.append(Problem((name,), str(exc)))
                continue
            if any(c in text for c in "\r\n\0"):
                problems.append(Problem((name,), "a header value cannot hold a line break"))
                continue
            expanded[name] = text
        if problems:
            raise problems_error(problems)
        return expanded


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LoggingConfig(Section):
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = Field(
        "info", description="Lowest level written."
    )
    format: Literal["json", "text"] = Field(
        "json", description="`json`: one object per line; `text`: for humans."
    )


GRAPH_SPEC = re.compile(r"shop|none|[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _graph_spec(value: str) -> str:
    if not GRAPH_SPEC.fullmatch(value):
        raise ValueError(
            "use shop (the sample graph), none (only sources), or package.module:attribute"
        )
    return value


# Late: source_models reads RouteAuth (above) from this module.
from bff.config.source_models import LinkConfig, SourceConfig  # noqa: E402


class CacheConfig(Section):
    enabled: bool = Field(
        False,
        description="Cache upstream GET answers as their own `Cache-Control` allows "
        "(`s-maxage`, else `max-age`, else the upstream's `cache.ttl`; `private` per principal; "
        "never `no-store` nor an answer with `Set-Cookie`), revalidated with `ETag` / "
        "`Last-Modified` while served stale.",
    )
    store: Literal["memory", "redis"] = Field(
        "memory",
        description="`memory` (each process its own) or `redis` (shared by replicas, under "
        "`redis.key_prefix`; needs `redis.url`).",
    )
    max_entries: int = Field(
        10000, ge=1, description="Most answers the memory store keeps (least recently used go)."
    )
    max_entry_size: ByteSize = Field(
        1024 * 1024, ge=1, description="Largest answer body kept; larger ones are not cached."
    )


class Settings(Section):
    graph: Annotated[str, AfterValidator(_graph_spec)] = Field(
        "shop",
        description="The code-first graph to serve: `shop` (the bundled sample), `none` (only "
        "`sources`), or `package.module:attribute` naming a `bff.graph.Graph`.",
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="The HTTP server.")
    upstreams: dict[Name, UpstreamConfig] = Field(
        default_factory=dict, description="REST services behind the gateway, by name."
    )
    routes: list[RouteConfig] = Field(
        default_factory=list, description="REST passthrough routes, served at /api/{name}/..."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Tokens and their keys.")
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Shared state backend.")
    memcached: MemcachedConfig = Field(
        default_factory=MemcachedConfig,
        description="memcached, when it holds the tokens (`auth.store: memcached`).",
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig, description="Query depth, cost and alias limits."
    )
    rate_limits: RateLimitsConfig = Field(
        default_factory=RateLimitsConfig, description="Per-client request budgets."
    )
    persisted_queries: PersistedQueriesConfig = Field(
        default_factory=PersistedQueriesConfig, description="APQ and persisted-only mode."
    )
    telemetry: TelemetryConfig = Field(
        default_factory=TelemetryConfig, description="OpenTelemetry tracing."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description='OpenAPI documents served as GraphQL, with no code (README "Your own '
        'services").',
    )
    links: list[LinkConfig] = Field(
        default_factory=list,
        description="Fields joining one source's types to another source's operation, "
        "batched: one call per link per level of a query.",
    )
    cache: CacheConfig = Field(
        default_factory=CacheConfig, description="The response cache of upstream answers."
    )

    @model_validator(mode="after")
    def _redis_cache_needs_redis(self) -> Settings:
        if self.cache.enabled and self.cache.store == "redis" and not self.redis_configured:
            raise problems_error(
                [Problem(("cache", "store"), "`redis` needs `redis.url`", repr("redis"))]
            )
        return self

    @property
    def redis_configured(self) -> bool:
        """Whether shared state lives in Redis: `redis.url` or `redis.sentinel` written (in
        the file or the environment: `redis.url` has a default nobody asked for), or
        `auth.store: redis`. The one rule (`bff.shared_state.configured` reads it)."""
        written = self.redis.model_fields_set if "redis" in self.model_fields_set else set()
        return "url" in written or "sentinel" in written or self.auth.store == "redis"

    @model_validator(mode="after")
    def _routes_fit_upstreams(self) -> Settings:
        problems: list[Problem] = []
        known = ", ".join(sorted(self.upstreams)) or "none are configured"
        names: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            if route.upstream not in self.upstreams:
                problems.append(
                    Problem(
                        ("routes", index, "upstream"),
                        f"no upstream of that name; use a key of upstreams ({known})",
                        repr(route.upstream),
                    )
                )
            if route.name in names:
                problems.append(
                    Problem(
                        ("routes", index, "name"),
                        f"duplicate route name (also routes[{names[route.name]}])",
                        repr(route.name),
                    )
                )
            names.setdefault(route.name, index)
        if problems:
            raise problems_error(problems)
        return self
