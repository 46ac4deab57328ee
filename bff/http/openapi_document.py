"""The OpenAPI 3.1 document of the gateway's REST surface, built from its settings.

The endpoints every gateway serves (`/auth/*`, `/.well-known/jwks.json`, `/healthz`,
`/readyz`, `/metrics`, `/admin/usage`, and `/admin/upstreams` unless `server.admin` is off)
and each configured passthrough route as `/api/{name}` and `/api/{name}/{path}`, with its
methods and its auth: a bearer security requirement naming the route's scopes (OpenAPI 3.1
allows them for any scheme) unless the route is `public`. Pure: settings in, a dict out.
"""

from __future__ import annotations

from typing import Any

from bff.config import RouteConfig, Settings

__all__ = ["OPENAPI_VERSION", "openapi_document", "route_security"]

OPENAPI_VERSION = "3.1.0"

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_BEARER = "bearerAuth"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _fields_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A body the token endpoints read as JSON or as a form, alike."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {_JSON: {"schema": schema}, _FORM: {"schema": schema}}}


_STRING = {"type": "string"}

_SCHEMAS: dict[str, Any] = {
    "TokenPair": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "refresh_token"],
        "properties": {
            "access_token": _STRING,
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_in": {"type": "integer", "description": "seconds until the access token"},
            "refresh_token": {"type": "string", "description": "single use: rotates"},
        },
    },
    "OAuthError": {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {
            "error": {
                "type": "string",
                "enum": ["invalid_grant", "invalid_request", "temporarily_unavailable"],
            },
            "error_description": _STRING,
        },
    },
    "Errors": {
        "description": "The gateway's error body, as GraphQL's: each error has its code.",
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "message": _STRING,
                        "extensions": {"type": "object", "properties": {"code": _STRING}},
                    },
                },
            }
        },
    },
    "PassthroughError": {
        "description": "An error of the gateway itself on a passthrough route.",
        "type": "object",
        "required": ["error", "code"],
        "properties": {"error": _STRING, "code": _STRING, "upstream": _STRING},
    },
    "Jwks": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "upstreams"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "upstreams": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "usable": {"type": "integer"},
                        "instances": {"type": "integer"},
                        "required": {"type": "boolean"},
                    },
                },
            },
            "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
        },
    },
}

_RESPONSES: dict[str, Any] = {
    "OAuthError": _json(_ref("schemas", "OAuthError"), "Refused (OAuth error body)."),
    "Unavailable": _json(
        _ref("schemas", "OAuthError"),
        "The auth service or the token store cannot answer (`temporarily_unavailable`).",
    ),
    "Unauthenticated": _json(
        _ref("schemas", "Errors"), "No valid bearer token (`UNAUTHENTICATED`)."
    ),
    "Forbidden": _json(_ref("schemas", "Errors"), "The token lacks the scope (`FORBIDDEN`)."),
    "RateLimited": {
        **_json(_ref("schemas", "Errors"), "Over the client's budget (`RATE_LIMITED`)."),
        "headers": {
            "Retry-After": {
                "description": "Whole seconds until a request would be allowed.",
                "schema": {"type": "integer"},
            }
        },
    },
    "PassthroughRefused": _json(
        _ref("schemas", "PassthroughError"),
        "Refused by the gateway: 400 bad path, 401, 403, 405 method not allowed, 413 body too "
        "large, 429 rate limited, 502/503/504 upstream failure.",
    ),
}


def _admin_security() -> list[dict[str, list[str]]]:
    return [{_BEARER: ["admin"]}]


def _gateway_paths(settings: Settings) -> dict[str, Any]:
    """The endpoints every gateway serves, whatever its routes."""
    admin_errors = {
        "401": _ref("responses", "Unauthenticated"),
        "403": _ref("responses", "Forbidden"),
    }
    if settings.rate_limits.enabled:  # the open paths (health, metrics, /auth/) are not limited
        admin_errors["429"] = _ref("responses", "RateLimited")
    oauth = {"400": _ref("responses", "OAuthError"), "503": _ref("responses", "Unavailable")}
    paths: dict[str, Any] = {
        "/auth/token": {
            "post": {
                "tags": ["auth"],
                "operationId": "login",
                "summary": "Log in: the auth service checks the password, the gateway issues",
                "security": [],
                "requestBody": _fields_body(
                    {
                        "username": _STRING,
                        "password": {"type": "string", "format": "password"},
                        "grant_type": {"type": "string", "const": "password"},
                    },
                    ["username", "password"],
                ),
                "responses": {"200": _json(_ref("schemas", "TokenPair"), "Tokens."), **oauth},
            }
        },
        "/auth/refresh": {
            "post": {
                "tags": ["auth"],
                "operationId": "refresh",
                "summary": "Trade a refresh token for a new pair (the old one is spent)",
                "security": [],
                "requestBody": _fields_body(
                    {
                        "refresh_token": _STRING,
                        "grant_type": {"type": "string", "const": "refresh_token"},
                    },
                    ["refresh_token"],
                ),
                "responses": {"200": _json(_ref("schemas", "TokenPair"), "Tokens."), **oauth},
            }
        },
        "/auth/revoke": {
            "post": {
                "tags": ["auth"],
                "operationId": "revoke",
                "summary": "Revoke a token (RFC 7009), or the bearer token and its family",
                "description": "Give `token` in the body, or no body and the token to revoke "
                "as the bearer token. 200 whether or not the token was valid.",
                "security": [{}, {_BEARER: []}],
                "requestBody": {
                    "required": False,
                    "content": {
                        media: {"schema": {"type": "object", "properties": {"token": _STRING}}}
                        for media in (_JSON, _FORM)
                    },
                },
                "responses": {"200": {"description": "Revoked, or nothing to revoke."}, **oauth},
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "tags": ["auth"],
                "operationId": "jwks",
                "summary": "The gateway's public signing keys (RS256/ES256)",
                "security": [],
                "responses": {"200": _json(_ref("schemas", "Jwks"), "A JSON Web Key Set.")},
            }
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "operationId": "healthz",
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"status": {"const": "ok"}}}, "Alive."
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "operationId": "readyz",
                "summary": "Readiness: every required upstream has a usable instance",
                "security": [],
                "responses": {
                    "200": _json(_ref("schemas", "Readiness"), "Ready."),
                    "503": _json(_ref("schemas", "Readiness"), "Not ready."),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The Prometheus text format.",
                        "content": {"text/plain": {"schema": _STRING}},
                    }
                },
            }
        },
        "/admin/usage": {
            "get": {
                "tags": ["admin"],
                "operationId": "usage",
                "summary": "The metering report: calls, errors, latency per client, operation "
                "and field",
                "security": _admin_security(),
                "parameters": [
                    _query("window", "How far back, e.g. 1h (at most 7d).", default="1h"),
                    _query("client", "Only this client id (user:1, anonymous, ...)."),
                    _query("operation", "Only this operation name."),
                ],
                "responses": {
                    "200": _json({"type": "object"}, "The report."),
                    "400": _json(_ref("schemas", "Errors"), "A bad parameter."),
                    **admin_errors,
                },
            }
        },
    }
    if settings.server.admin:
        paths["/admin/upstreams"] = {
            "get": {
                "tags": ["admin"],
                "operationId": "upstreams",
                "summary": "Every pool's instances and their state",
                "security": _admin_security(),
                "responses": {"200": _json({"type": "object"}, "The pools."), **admin_errors},
            }
        }
    return paths


def _query(name: str, description: str, *, default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if default is not None:
        schema["default"] = default
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def route_security(route: RouteConfig) -> list[dict[str, list[str]]]:
    """The route's `auth` as an OpenAPI security requirement: none for `public`."""
    if route.auth == "public":
        return []
    if route.auth == "authenticated":
        return [{_BEARER: []}]
    return [{_BEARER: list(route.auth.scopes)}]


def _auth_words(route: RouteConfig) -> str:
    if route.auth == "public":
        return "Public: no token needed."
    if route.auth == "authenticated":
        return "Needs a bearer token."
    return "Needs a bearer token with scope " + ", ".join(f"`{s}`" for s in route.auth.scopes) + "."


def _route_paths(route: RouteConfig) -> dict[str, Any]:
    """`/api/{name}` and `/api/{name}/{path}`, each with the route's methods."""
    if route.rewrite is not None:
        target = f"`{route.rewrite}/{{path}}`"
    elif route.strip_prefix:
        target = "`/{path}`"
    else:
        target = f"`/api/{route.name}/{{path}}`"
    description = (
        f"REST passthrough to upstream `{route.upstream}`: {target} there, the query string "
        f"unchanged. {_auth_words(route)}"
    )
    path_param = {
        "name": "path",
        "in": "path",
        "required": True,
        "description": "The path under the route; it may span segments (`products/1`).",
        "schema": {"type": "string"},
    }
    paths: dict[str, Any] = {}
    for suffix, parameters in (("", []), ("/{path}", [path_param])):
        item: dict[str, Any] = {}
        for method in route.methods:
            operation: dict[str, Any] = {
                "tags": [f"passthrough: {route.name}"],
                "operationId": f"{route.name}_{method.lower()}{'_path' if suffix else ''}",
                "summary": f"{method} on upstream {route.upstream}",
                "description": description,
                "security": route_security(route),
                "responses": {
                    "default": {"description": "The upstream's answer, as it is."},
                    "4XX": _ref("responses", "PassthroughRefused"),
                    "5XX": _ref("responses", "PassthroughRefused"),
                },
            }
            if parameters:
                operation["parameters"] = parameters
            if method in _BODY_METHODS:
                operation["requestBody"] = {
                    "required": False,
                    "description": "Streamed to the upstream as it is.",
                    "content": {"*/*": {"schema": {}}},
                }
            item[method.lower()] = operation
        paths[f"/api/{route.name}{suffix}"] = item
    return paths


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this gateway's REST surface, from its settings."""
    paths = _gateway_paths(settings)
    for route in settings.routes:
        paths.update(_route_paths(route))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "bff gateway",
            "version": "1",
            "description": "The REST surface of the gateway. GraphQL is at `POST /graphql` "
            "(GraphiQL on `GET /graphql` in a browser). Tokens come from `POST /auth/token`; "
            "send them as `Authorization: Bearer <token>`.",
        },
        "tags": [
            {"name": "auth", "description": "Tokens for REST clients."},
            {"name": "operations", "description": "Health, readiness and metrics."},
            {"name": "admin", "description": "Needs a token with scope `admin`."},
            *(
                {"name": f"passthrough: {route.name}", "description": _auth_words(route)}
                for route in settings.routes
            ),
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                _BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token from `POST /auth/token` (a JWT or an "
                    "opaque `bfa_...` token, as `auth.token_format` says).",
                }
            },
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
        },
    }
