"""The engine's own GraphQL fields: `login`, `refreshToken`, `logout` (SPEC sections 3, 5, 12).

They belong to the gateway, not to a graph: every graph gets them when an `auth` upstream is
configured (`token_schema`), and none without one. Credentials go to the auth service and are
forgotten; the token service issues the tokens. Refused credentials and bad refresh tokens
are `UNAUTHENTICATED`; the auth service or the token store being down is
`UPSTREAM_UNAVAILABLE`, and nobody gets a token.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
)

from bff.auth.issuing import NotIssuing, TokenPair, TokenService
from bff.errors import BadUserInput, Unauthenticated
from bff.graph.context import AnyContext
from bff.graph.credentials import AUTH_UPSTREAM, CredentialsClient
from bff.graph.fields import read_field
from bff.graph.graph import Graph

MAX_CREDENTIAL = 4_096


def token_service(ctx: AnyContext) -> TokenService:
    if ctx.tokens is None or not ctx.tokens.issues:
        raise NotIssuing()
    return ctx.tokens


async def login(ctx: AnyContext, username: str, password: str) -> TokenPair:
    service = token_service(ctx)
    if not username or not password:
        raise Unauthenticated("Invalid credentials")
    if len(username) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL:
        raise BadUserInput("username or password too long")
    await service.admit_login(username)  # the login throttle (RATE_LIMITED over it)
    identity = await CredentialsClient(ctx.pools[AUTH_UPSTREAM]).verify(username, password)
    return await service.login(identity.sub, identity.scopes, identity.roles)


async def refresh_token(ctx: AnyContext, refresh_token: str) -> TokenPair:
    return await token_service(ctx).refresh(refresh_token)


async def logout(ctx: AnyContext) -> bool:
    """Revoke the presented token (and its refresh family); anonymous callers are refused."""
    if not ctx.principal.is_authenticated:
        raise Unauthenticated()
    await token_service(ctx).logout(ctx.principal)
    return True


def _required(type_: Any) -> GraphQLNonNull[Any]:
    return GraphQLNonNull(type_)


AUTH_PAYLOAD = GraphQLObjectType(
    "AuthPayload",
    lambda: {
        "accessToken": read_field(_required(GraphQLString), lambda p: p.access_token),
        "tokenType": read_field(_required(GraphQLString), lambda p: p.token_type),
        "expiresIn": read_field(_required(GraphQLInt), lambda p: p.expires_in),
        "refreshToken": read_field(_required(GraphQLString), lambda p: p.refresh_token),
    },
    description="Tokens issued by the gateway (as `POST /auth/token` answers).",
)


async def _login(_: Any, info: Any, username: str, password: str) -> TokenPair:
    return await login(info.context, username, password)


async def _refresh(_: Any, info: Any, refreshToken: str) -> TokenPair:
    return await refresh_token(info.context, refreshToken)


async def _logout(_: Any, info: Any) -> bool:
    return await logout(info.context)


def token_schema() -> GraphQLSchema:
    """The engine's token mutations (with a `Query` the merge drops: graphql-core needs one)."""
    from graphql import GraphQLField

    text = _required(GraphQLString)
    mutation = GraphQLObjectType(
        "Mutation",
        {
            "login": GraphQLField(
                _required(AUTH_PAYLOAD),
                {"username": GraphQLArgument(text), "password": GraphQLArgument(text)},
                resolve=_login,
            ),
            "refreshToken": GraphQLField(
                _required(AUTH_PAYLOAD), {"refreshToken": GraphQLArgument(text)}, resolve=_refresh
            ),
            "logout": GraphQLField(
                _required(GraphQLBoolean),
                resolve=_logout,
                description="Revokes the presented token.",
            ),
        },
    )
    return GraphQLSchema(GraphQLObjectType("Query", {}), mutation)


def token_graph() -> Graph:
    return Graph(token_schema(), extra_upstreams=frozenset({AUTH_UPSTREAM}), name="the gateway")
