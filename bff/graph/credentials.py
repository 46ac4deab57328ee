"""The engine's client of the auth service: the gateway never checks a password itself.

`POST /verify {"username", "password"}` on the `auth` upstream answers who the credentials
belong to (SPEC section 2). Both token doors use it: `POST /auth/token` and the `login`
mutation (`bff.graph.token_fields`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bff.errors import Unauthenticated
from bff.graph.client import ServiceClient

AUTH_UPSTREAM = "auth"


class Identity(NamedTuple):
    """Who the auth service says a set of credentials belongs to."""

    sub: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]


def identity_record(d: Any) -> Identity:
    return Identity(
        str(d["sub"]), tuple(str(s) for s in d["scopes"]), tuple(str(r) for r in d["roles"])
    )


class CredentialsClient(ServiceClient):
    async def verify(self, username: str, password: str) -> Identity:
        """Raises `Unauthenticated` when the auth service refuses the credentials."""
        response = await self.pool.request(
            "POST", "/verify", json={"username": username, "password": password}
        )
        if response.status == 401:
            raise Unauthenticated("Invalid credentials")
        return self.parse(identity_record, self.check(response))
