"""Rate limit stage: one budget per client, checked before any route does work.

It runs after the authentication stage because the budget is keyed by the token subject
(SPEC section 7); a request whose token is refused never reaches it (it got its 401 already).
A refused request gets 429 with `Retry-After` (whole seconds, rounded up), the `RateLimit-*`
headers and a `RATE_LIMITED` error body, on `/graphql` and every other route alike.

The token endpoints (`/auth/`) pass unmetered here: the login throttle (`rate_limits.login`)
counts them, per address and per username, in the token service. For it, this stage puts the
client's address (`server.trusted_proxies` applied) in `bff.auth.throttle.CLIENT_ADDRESS` for
the rest of the request, whatever the path.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from bff.auth.throttle import CLIENT_ADDRESS
from bff.errors import RateLimited, UpstreamUnavailable
from bff.http.authentication import OPEN_PATHS
from bff.http.state import request_state
from bff.limits import ClientIdentifier, RateLimiter, StoreUnavailable, Verdict
from bff.rendering.errors import error_response


def _accept(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"accept":
            return bytes(value).decode("latin-1")
    return None


def rate_limit_headers(verdict: Verdict, period: float) -> dict[str, str]:
    return {
        "Retry-After": verdict.retry_after_header,
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(verdict.remaining),
        "RateLimit-Reset": str(max(1, -int(-verdict.reset // 1))),
        "RateLimit-Policy": f"{verdict.limit};w={max(1, round(period))}",
    }


class RateLimitStage:
    def __init__(self, app: ASGIApp, limiter: RateLimiter, identifier: ClientIdentifier) -> None:
        self.app = app
        self.limiter = limiter
        self.identifier = identifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The login throttle's address, for the token endpoints and the GraphQL mutations.
        address = CLIENT_ADDRESS.set(self.identifier.client_ip(scope))
        try:
            if scope["path"].startswith(OPEN_PATHS):  # the token endpoints: the throttle's
                await self.app(scope, receive, send)
                return
            state = request_state(scope)
            principal = state.principal
            client = state.client_id = self.identifier.identify(scope, principal)
            try:
                verdict = await self.limiter.check(client, principal.scopes)
            except StoreUnavailable:
                unavailable = UpstreamUnavailable(
                    "rate-limit-store", "Rate limiting is unavailable; try again shortly"
                )
                response = error_response(unavailable, _accept(scope))
                response.status_code = 503
                response.headers["Retry-After"] = "1"
                await response(scope, receive, send)
                return
            if verdict is None or verdict.allowed:
                await self.app(scope, receive, send)
                return
            state.error_codes.append(RateLimited.code)
            error = RateLimited(retryAfter=int(verdict.retry_after_header))
            response = error_response(error, _accept(scope))
            rule = self.limiter.rule_for(client, principal.scopes)
            response.headers.update(rate_limit_headers(verdict, rule.period))
            await response(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(address)
