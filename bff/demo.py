"""`bff demo`: the sample shop and the gateway in one process, with embedded defaults.

The signing secret is random per run (the demo never ships a known key), and a token for
user 1 (who holds every scope) is printed, and filled into GraphiQL's headers, so the
protected fields can be tried at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from bff.auth import TokenSigner
from bff.config import Settings, settings_from_dict
from bff.http.graphiql import DEFAULT_QUERY

DEMO_SCOPES = ("orders:read", "users:read:email")

EXAMPLE_QUERY = DEFAULT_QUERY  # what GraphiQL opens with


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
        "auth": {"jwt": {"algorithm": "HS256", "secret": secrets.token_urlsafe(32)}},
    }
    return settings_from_dict(data)


def demo_token(settings: Settings, sub: str = "1", scopes: Sequence[str] = DEMO_SCOPES) -> str:
    auth = settings.auth
    key = auth.jwt.signing_key()
    assert key is not None, "the demo signs with its own HS256 secret"
    signer = TokenSigner(auth.jwt.algorithm, key, auth.issuer, auth.audience)
    return signer.sign(sub, scopes, ttl=auth.access_ttl)


def banner(settings: Settings, token: str) -> str:
    base = f"http://{settings.server.host}:{settings.server.port}"
    lines = [
        "bff demo is running",
        "",
        f"  GraphiQL   {base}/graphql",
        f"  readiness  {base}/readyz",
        "",
        "  upstreams:",
        *(
            f"    {name:<10} {', '.join(i.url for i in u.instances)}"
            for name, u in settings.upstreams.items()
        ),
        "",
        "  token for user 1 (scopes: " + " ".join(DEMO_SCOPES) + "):",
        f"    {token}",
        "",
        "  try it:",
        f"    curl -s {base}/graphql -H 'Content-Type: application/json' \\",
        f"      -H 'Authorization: Bearer {token}' \\",
        """      -d '{"query": "{ orders(first: 2) { nodes { id total user { name } } } }"}'""",
        "",
        "  GraphiQL opens with this query, the token already in its Headers tab:",
        *("    " + line for line in EXAMPLE_QUERY.splitlines()),
        "",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)
