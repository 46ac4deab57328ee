"""The one exception tree of the gateway, with exactly the spec's error codes.

    BffError                        INTERNAL_SERVER_ERROR (500, message masked)
    ├── Unauthenticated             UNAUTHENTICATED       (401)
    ├── Forbidden                   FORBIDDEN             (403)
    ├── BadUserInput                BAD_USER_INPUT        (400)
    ├── NotFound                    NOT_FOUND             (404)
    ├── UpstreamError               UPSTREAM_UNAVAILABLE  (502)
    │   ├── UpstreamUnavailable     UPSTREAM_UNAVAILABLE  (502)
    │   │   └── BadUpstreamResponse UPSTREAM_UNAVAILABLE  (502)
    │   └── UpstreamTimeout         UPSTREAM_TIMEOUT      (504)
    ├── ShuttingDown                UPSTREAM_UNAVAILABLE  (503, the drain ended first)
    ├── RateLimited                 RATE_LIMITED          (429)
    ├── QueryTooDeep                QUERY_TOO_DEEP        (400)
    ├── QueryTooComplex             QUERY_TOO_COMPLEX     (400)
    ├── PersistedQueryNotFound      PERSISTED_QUERY_NOT_FOUND (400)
    └── PersistedQueryRequired      PERSISTED_QUERY_REQUIRED  (400)

Every layer raises from this tree and nothing else crosses a boundary: transport errors stop in
`bff.upstream`, HTTP statuses stop in `upstream_clients`. `to_graphql_error` and
`to_http_response` render an error for the two doors of the gateway so that both agree.
Only errors whose class says `expose = True` show their message to clients.

This module imports nothing else of ours.
"""

from __future__ import annotations

from typing import Any, ClassVar

CODES: tuple[str, ...] = (
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "UPSTREAM_UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "RATE_LIMITED",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_REQUIRED",
    "INTERNAL_SERVER_ERROR",
)


class BffError(Exception):
    """Base of every error the gateway raises on purpose."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    status: ClassVar[int] = 500
    expose: ClassVar[bool] = False
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, **extensions: Any) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extra: dict[str, Any] = extensions

    @property
    def extensions(self) -> dict[str, Any]:
        """GraphQL `extensions` of this error (graphql-core copies it onto the GraphQLError)."""
        return {"code": self.code, **self.extra}

    @property
    def public_message(self) -> str:
        return self.message if self.expose else self.default_message


class Unauthenticated(BffError):
    code = "UNAUTHENTICATED"
    status = 401
    expose = True
    default_message = "Authentication required"


class Forbidden(BffError):
    code = "FORBIDDEN"
    status = 403
    expose = True
    default_message = "Not allowed"


class BadUserInput(BffError):
    code = "BAD_USER_INPUT"
    status = 400
    expose = True
    default_message = "Invalid input"


class NotFound(BffError):
    code = "NOT_FOUND"
    status = 404
    expose = True
    default_message = "Not found"


class UpstreamError(BffError):
    """An upstream service could not give a usable answer."""

    code = "UPSTREAM_UNAVAILABLE"
    status = 502
    expose = True
    default_message = "Upstream service unavailable"

    def __init__(self, upstream: str, message: str | None = None, **extensions: Any) -> None:
        super().__init__(message or f"{self.default_message}: {upstream}", **extensions)
        self.upstream = upstream

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "upstream": self.upstream, **self.extra}


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset, no instance, or a 5xx answer."""


class BadUpstreamResponse(UpstreamUnavailable):
    """The upstream answered something the client cannot read (the body is never shown)."""

    default_message = "Upstream service gave an unreadable answer"


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"
    status = 504
    default_message = "Upstream service timed out"


class ShuttingDown(BffError):
    """The gateway stopped before this request finished; another replica can serve it."""

    code = "UPSTREAM_UNAVAILABLE"
    status = 503
    expose = True
    default_message = "The gateway is shutting down; retry the request"


class RateLimited(BffError):
    code = "RATE_LIMITED"
    status = 429
    expose = True
    default_message = "Rate limit exceeded"


class QueryTooDeep(BffError):
    code = "QUERY_TOO_DEEP"
    status = 400
    expose = True
    default_message = "Query is too deep"


class QueryTooComplex(BffError):
    code = "QUERY_TOO_COMPLEX"
    status = 400
    expose = True
    default_message = "Query is too complex"


class PersistedQueryNotFound(BffError):
    code = "PERSISTED_QUERY_NOT_FOUND"
    status = 400
    expose = True
    default_message = "PersistedQueryNotFound"


class PersistedQueryRequired(BffError):
    code = "PERSISTED_QUERY_REQUIRED"
    status = 400
    expose = True
    default_message = "Only persisted queries are allowed"


def error_body(error: BffError) -> dict[str, Any]:
    """The GraphQL-shaped error object used by both doors (GraphQL and plain HTTP)."""
    return {"message": error.public_message, "extensions": error.extensions}
