"""From a bearer token to a principal: the gateway's JWTs, its opaque tokens, trusted IdPs.

The hot path is a JWT this gateway has seen before: a dict lookup for the verified token
and one each for its `jti` and its family in the revocation list, no store round trip (see
`revocation`). An
opaque token costs a store round trip at most once a second per gateway (see `opaque`). A
JWT of another issuer goes to `issuers`, after reading its `iss` without trusting it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bff.auth.issuers import TrustedIssuers
from bff.auth.issuing import unverified_issuer
from bff.auth.opaque import ACCESS_PREFIX, OpaqueTokens
from bff.auth.principal import Principal
from bff.auth.refresh import REFRESH_PREFIX
from bff.auth.revocation import Revocations
from bff.auth.tokens import TokenVerifier
from bff.errors import Unauthenticated


class Authenticator:
    def __init__(
        self,
        *,
        issuer: str,
        verifier: TokenVerifier | None,
        revocations: Revocations,
        opaque: OpaqueTokens | None,
        trusted: TrustedIssuers | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.revocations = revocations
        self.opaque = opaque
        self.trusted = trusted
        self.clock = clock

    async def authenticate(self, token: str) -> Principal:
        """The principal of `token`; `Unauthenticated` for a bad, expired or revoked one, and
        `TokenStoreUnavailable` when an opaque token cannot be looked up."""
        verifier = self.verifier
        if verifier is not None:
            principal = verifier.cached(token, self.clock())
            if principal is not None:
                return await self._not_revoked(principal)
        if token.startswith(ACCESS_PREFIX):
            if self.opaque is None:
                raise Unauthenticated("Invalid token")
            return await self.opaque.principal(token)
        if token.startswith(REFRESH_PREFIX):
            raise Unauthenticated("A refresh token is not an access token")
        trusted = self.trusted
        if trusted is not None:
            principal = trusted.cached(token, self.clock())
            if principal is not None:
                return principal
            issuer = unverified_issuer(token)
            if issuer is not None and issuer != self.issuer and issuer in trusted:
                return await trusted.verify(token, issuer)
        if verifier is None:
            raise Unauthenticated("This gateway accepts no tokens")
        return await self._not_revoked(verifier.verify(token))

    async def _not_revoked(self, principal: Principal) -> Principal:
        """Refused when its `jti` or its refresh family (`fam`) is revoked."""
        claims = principal.claims
        jti = claims.get("jti")
        if isinstance(jti, str):
            family = claims.get("fam")
            if await self.revocations.is_revoked(jti, family if isinstance(family, str) else None):
                raise Unauthenticated("Token revoked")
        return principal
