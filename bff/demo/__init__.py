"""`bff demo`: the sample shop and the gateway in one process, with embedded defaults.

The signing secret is random per run (the demo never ships a known key). Before serving, the
demo logs in two sample users the way any client would, through the auth service and the
gateway's token service, and prints their tokens: user 1, an admin (scopes `admin`,
`orders:read`, `users:read:email`), and user 2, a customer without scopes.
The admin's token is also filled into GraphiQL's headers, so the protected fields can be
tried at once.

The demo also has the README's two passthrough routes (`/api/catalog`, public, and
`/api/orders`, scope `orders:read`), two instances of users (so stopping one shows the pool
failing over), and `/demo/services` to stop, slow or break any instance (`bff.demo.control`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bff.auth.issuing import TokenPair, TokenService
from bff.config import Settings, settings_from_dict
from bff.http.graphiql import DEFAULT_QUERY

ADMIN = ("user1", "password1")
CUSTOMER = ("user2", "password2")


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    scopes: tuple[str, ...]
    tokens: TokenPair

    def describe(self) -> str:
        return "scopes: " + " ".join(self.scopes) if self.scopes else "a customer, no scopes"


EXAMPLE_QUERY = DEFAULT_QUERY  # what GraphiQL opens with

#: Instances per sample service (the rest run one): two users, to see failover.
DEMO_INSTANCES = {"users": 2}

#: The README's passthrough examples that the sample services serve.
DEMO_ROUTES: tuple[dict[str, Any], ...] = (
    {"name": "catalog", "upstream": "catalog", "methods": ["GET"], "auth": "public"},
    {
        "name": "orders",
        "upstream": "orders",
        "methods": ["GET", "POST"],
        "auth": {"scopes": ["orders:read"]},
    },
)


def demo_settings(
    urls: Mapping[str, Sequence[str]], *, host: str = "127.0.0.1", port: int = 8000
) -> Settings:
    """Gateway settings over running sample services (`urls`: service -> instance URLs)."""
    data: dict[str, Any] = {
        "server": {"host": host, "port": port},
        "upstreams": {
            name: {"instances": [{"url": u} for u in instance_urls]}
            for name, instance_urls in urls.items()
        },
        "routes": [dict(route) for route in DEMO_ROUTES],
        "auth": {
            "access_ttl": "1h",  # long enough to paste a printed token somewhere and play
            "jwt": {"algorithm": "HS256", "secret": secrets.token_urlsafe(32)},
        },
    }
    return settings_from_dict(data)


def demo_logins(service: TokenService, auth_url: str) -> list[DemoLogin]:
    """Log the sample admin and customer in: the auth service checks, the gateway issues."""
    logins = []
    with httpx.Client(base_url=auth_url, timeout=5, trust_env=False) as http:
        for username, password in (ADMIN, CUSTOMER):
            response = http.post("/verify", json={"username": username, "password": password})
            response.raise_for_status()
            who = response.json()
            pair = asyncio.run(service.login(who["sub"], who["scopes"], who["roles"]))
            logins.append(DemoLogin(username, tuple(who["scopes"]), pair))
    return logins


def banner(settings: Settings, logins: Sequence[DemoLogin]) -> str:
    base = f"http://{settings.server.host}:{settings.server.port}"
    token = logins[0].tokens.access_token
    auth = '-H "Authorization: Bearer $TOKEN"'
    control = f"curl -s -X POST {base}/demo/services"
    lines = [
        "bff demo is running",
        "",
        f"  GraphiQL   {base}/graphql",
        f"  REST docs  {base}/docs",
        f"  readiness  {base}/readyz",
        "",
        "  upstreams:",
        *(
            f"    {name:<10} {', '.join(i.url for i in u.instances)}"
            for name, u in settings.upstreams.items()
        ),
        "",
        *(
            line
            for login in logins
            for line in (
                f"  token for {login.username.replace('user', 'user ')} ({login.describe()}):",
                f"    {login.tokens.access_token}",
                f"    refresh token: {login.tokens.refresh_token}",
                "",
            )
        ),
        "  the curl lines below read the admin's token from TOKEN:",
        f"    export TOKEN={token}",
        "",
        "  log in (users: userN / passwordN; user1 is the admin):",
        f"    curl -s {base}/auth/token -H 'Content-Type: application/json' \\",
        """      -d '{"username": "user2", "password": "password2"}'""",
        "",
        "  try it:",
        f"    curl -s {base}/graphql -H 'Content-Type: application/json' {auth} \\",
        """      -d '{"query": "{ orders(first: 2) { nodes { id total user { name } } } }"}'""",
        "",
        "  REST passthrough (catalog is public, orders needs scope orders:read):",
        f"    curl -s {base}/api/catalog/products/1",
        f"    curl -s '{base}/api/orders/orders?limit=2' {auth}",
        "",
        "  stop, slow or break a sample service, then run a query again (admin token):",
        "    # every instance and its state",
        f"    curl -s {base}/demo/services {auth}",
        "    # reviews down: ratings are null, each with an error beside it (partial data)",
        f'    {control}/reviews/0 {auth} -d \'{{"state": "down"}}\'',
        "    # one of the two users instances down: the pool fails over to the other",
        f'    {control}/users/0 {auth} -d \'{{"state": "down"}}\'',
        "    # catalog slowed, orders failing half its requests",
        f'    {control}/catalog/0 {auth} -d \'{{"latency": "800ms"}}\'',
        f"    {control}/orders/0 {auth} -d '{{\"failure_rate\": 0.5}}'",
        "    # back to normal",
        f"    {control}/reviews/0 {auth} -d '{{}}'",
        f"    {control}/users/0 {auth} -d '{{}}'",
        "",
        "  or in GraphiQL:",
        """    mutation { login(username: "user2", password: "password2") { accessToken } }""",
        "",
        "  GraphiQL opens with this query, the admin's token already in its Headers tab:",
        *("    " + line for line in EXAMPLE_QUERY.splitlines()),
        "",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)
