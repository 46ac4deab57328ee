"""Client of the auth service: the gateway never checks a password itself."""

from __future__ import annotations

from typing import Any

from bff.errors import Unauthenticated
from upstream_clients.base import ServiceClient
from upstream_clients.records import Identity


def identity_record(d: Any) -> Identity:
    return Identity(
        str(d["sub"]), tuple(str(s) for s in d["scopes"]), tuple(str(r) for r in d["roles"])
    )


class AuthClient(ServiceClient):
    async def verify(self, username: str, password: str) -> Identity:
        """Raises `Unauthenticated` when the auth service refuses the credentials."""
        response = await self.pool.request(
            "POST", "/verify", json={"username": username, "password": password}
        )
        if response.status == 401:
            raise Unauthenticated("Invalid credentials")
        return self.parse(identity_record, self.check(response))
