"""The token endpoints for REST clients: `POST /auth/token`, `/auth/refresh`, `/auth/revoke`,
and `GET /.well-known/jwks.json` (SPEC sections 4, 5 and 10).

They answer as OAuth does (RFC 6749 section 5.2): `{"error", "error_description"}`, 400
`invalid_grant` for refused credentials or a bad, expired, revoked or reused refresh token,
400 `invalid_request` for a malformed request. `/auth/revoke` follows RFC 7009: 200 for any
well-formed request, whether or not the token was valid. When the auth service or the token
store cannot answer: 503 `temporarily_unavailable`, with the gateway's `UPSTREAM_UNAVAILABLE`
error beside it; never a 500, and nobody is let in. Passwords are forwarded to the auth
service and forgotten: never stored, never logged.

`/auth/token` and `/auth/refresh` are throttled (`rate_limits.login`, SPEC section 15) by the
token service, as the GraphQL mutations are: over a budget, 429 with `Retry-After` and
`{"error": "too_many_requests", ...}`, before the password is checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bff.auth import bearer_token
from bff.auth.runtime import AuthRuntime
from bff.auth.throttle import CLIENT_ADDRESS
from bff.errors import BffError, RateLimited, Unauthenticated, UpstreamError, error_body
from bff.graph.credentials import AUTH_UPSTREAM, CredentialsClient
from bff.http.state import request_state
from bff.upstream import UpstreamPool

MAX_BODY = 16_384
MAX_FIELD = 4_096
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class InvalidRequest(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def oauth_error(status: int, error: str, description: str, **more: Any) -> Response:
    body = {"error": error, "error_description": description, **more}
    return Response(orjson.dumps(body), status, headers=NO_STORE, media_type="application/json")


def unavailable(error: BffError) -> Response:
    return oauth_error(
        503, "temporarily_unavailable", error.public_message, errors=[error_body(error)]
    )


async def read_fields(request: Request) -> dict[str, str] | None:
    """The JSON or form fields of the body; None for an empty body."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidRequest("request body too large")
    if not body.strip():
        return None
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidRequest("body must be a JSON object")
        return {k: v for k, v in data.items() if v is not None}
    if media_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=32)
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest("body is not a valid form") from None
        if any(len(values) > 1 for values in form.values()):
            raise InvalidRequest("a parameter is repeated")
        return {k: values[0] for k, values in form.items()}
    raise InvalidRequest("send application/json or application/x-www-form-urlencoded")


def text_field(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} is required (a non-empty string)")
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"{name} is too long")
    return value


def check_grant_type(fields: Mapping[str, Any], expected: str) -> None:
    grant_type = fields.get("grant_type", expected)
    if grant_type != expected:
        raise InvalidRequest(f"grant_type must be {expected} here")


def throttled(error: RateLimited) -> Response:
    """429 as OAuth clients read it, with `Retry-After` in whole seconds."""
    retry_after = str(error.extra.get("retryAfter", 1))
    response = oauth_error(429, "too_many_requests", error.public_message)
    response.headers["Retry-After"] = retry_after
    return response


Handler = Callable[[Request], Awaitable[Response]]


def oauth_endpoint(handler: Handler) -> Handler:
    """Map the gateway's errors to OAuth answers, one way for every token endpoint."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except InvalidRequest as error:
            return oauth_error(400, "invalid_request", error.description)
        except Unauthenticated as error:
            return oauth_error(400, "invalid_grant", error.public_message)
        except RateLimited as error:
            address = CLIENT_ADDRESS.get()
            if address is not None:  # `bff_rate_limited_total` and the access log say who
                request_state(request.scope).client_id = "ip:" + address
            return throttled(error)
        except UpstreamError as error:
            return unavailable(error)
        except BffError as error:
            if error.status >= 500:
                raise
            return oauth_error(400, "invalid_request", error.public_message)

    return endpoint


def auth_routes(runtime: AuthRuntime, pools: Mapping[str, UpstreamPool]) -> list[Route]:
    service = runtime.service

    @oauth_endpoint
    async def token(request: Request) -> Response:
        fields = await read_fields(request) or {}
        check_grant_type(fields, "password")
        username, password = text_field(fields, "username"), text_field(fields, "password")
        if not service.issues:
            raise InvalidRequest("this gateway does not issue tokens")
        await service.admit_login(username)
        identity = await CredentialsClient(pools[AUTH_UPSTREAM]).verify(username, password)
        pair = await service.login(identity.sub, identity.scopes, identity.roles)
        return Response(orjson.dumps(pair.oauth()), headers=NO_STORE, media_type="application/json")

    @oauth_endpoint
    async def refresh(request: Request) -> Response:
        fields = await read_fields(request) or {}
        check_grant_type(fields, "refresh_token")
        pair = await service.refresh(text_field(fields, "refresh_token"))
        return Response(orjson.dumps(pair.oauth()), headers=NO_STORE, media_type="application/json")

    @oauth_endpoint
    async def revoke(request: Request) -> Response:
        fields = await read_fields(request)
        if fields is not None:
            await service.revoke(text_field(fields, "token"))
            return Response(b"", headers=NO_STORE)
        try:
            presented = bearer_token(request.headers.get("authorization"))
        except Unauthenticated:
            raise InvalidRequest("malformed Authorization header") from None
        if presented is None:
            raise InvalidRequest("give the token to revoke, or present it as a bearer token")
        try:
            principal = await runtime.authenticator.authenticate(presented)
        except Unauthenticated:
            return Response(b"", headers=NO_STORE)  # nothing valid to revoke (RFC 7009)
        await service.logout(principal)
        return Response(b"", headers=NO_STORE)

    async def jwks(request: Request) -> Response:
        body = orjson.dumps(runtime.keyring.jwks())
        headers = {"Cache-Control": "public, max-age=60"}
        return Response(body, headers=headers, media_type="application/json")

    keys = [Route("/.well-known/jwks.json", jwks, methods=["GET"])]
    if AUTH_UPSTREAM not in pools:  # no auth service: nobody logs in here (SPEC section 12)
        return keys
    return [
        Route("/auth/token", token, methods=["POST"]),
        Route("/auth/refresh", refresh, methods=["POST"]),
        Route("/auth/revoke", revoke, methods=["POST"]),
        *keys,
    ]
