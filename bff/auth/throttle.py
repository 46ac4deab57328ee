"""Login throttling as the token service sees it: who is trying, and one gate to ask.

Both doors into the token service (the REST endpoints of `bff.routes.auth` and the GraphQL
mutations) go through `TokenService.admit_login` and `TokenService.refresh`, which ask the
`LoginGate` before the auth service or the token store does any work: a refused attempt costs
no password check, and a correct password over the limit is refused like a wrong one.

The gate counts an attempt against the client address and against the account tried: the
username of a login (case-folded and digested, so the store's keys hold no username) or the
family of a refresh token (a family is one login of one user). The budgets and their store
live in `bff.limits.login`, which this package does not import: the app injects the gate.

The address is the rate-limit stage's (`bff.limits.clients`, `server.trusted_proxies`),
carried to the resolvers in `CLIENT_ADDRESS`, as contextvars carry the request id.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from typing import Protocol

CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("bff_client_address", default=None)


class LoginGate(Protocol):
    async def admit(self, address: str | None, account: str | None) -> None:
        """Count one attempt of `address` on `account`; `RateLimited` over either budget.
        Without an address (not known) or an account (a malformed token) that budget is not
        counted."""


def username_account(username: str) -> str:
    """The account a login tries: `Alice` and `alice` are one (the store sees a digest)."""
    folded = username.strip().casefold()
    return "user:" + hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def family_account(family: str) -> str:
    """The account a refresh tries: its token's family."""
    return "family:" + family
