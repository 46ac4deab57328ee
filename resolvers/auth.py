"""The token mutations: `login`, `refreshToken`, `logout` (SPEC sections 3, 5 and 10).

Credentials go to the auth service and are forgotten; the token service issues the tokens.
Refused credentials and bad refresh tokens are `UNAUTHENTICATED`; the auth service or the
token store being down is `UPSTREAM_UNAVAILABLE`, and nobody gets a token.
"""

from __future__ import annotations

from bff.auth.issuing import NotIssuing, TokenPair, TokenService
from bff.errors import BadUserInput, Unauthenticated
from resolvers.context import RequestContext

MAX_CREDENTIAL = 4_096


def token_service(ctx: RequestContext) -> TokenService:
    if ctx.tokens is None or not ctx.tokens.issues:
        raise NotIssuing()
    return ctx.tokens


async def login(ctx: RequestContext, username: str, password: str) -> TokenPair:
    service = token_service(ctx)
    if not username or not password:
        raise Unauthenticated("Invalid credentials")
    if len(username) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL:
        raise BadUserInput("username or password too long")
    await service.admit_login(username)  # the login throttle (RATE_LIMITED over it)
    identity = await ctx.clients.auth.verify(username, password)
    return await service.login(identity.sub, identity.scopes, identity.roles)


async def refresh_token(ctx: RequestContext, refresh_token: str) -> TokenPair:
    return await token_service(ctx).refresh(refresh_token)


async def logout(ctx: RequestContext) -> bool:
    """Revoke the presented token (and its refresh family); anonymous callers are refused."""
    if not ctx.principal.is_authenticated:
        raise Unauthenticated()
    await token_service(ctx).logout(ctx.principal)
    return True
