"""The gateway as token issuer: log in, refresh, revoke (SPEC section 5).

`TokenService` turns an identity the auth service vouched for into an access token (a signed
JWT or an opaque token, per `auth.token_format`) and a rotating refresh token, and revokes
them: opaque tokens by deletion, JWTs by `jti` until their `exp`, refresh tokens by family.
It never sees a password: checking credentials is the auth service's job, upstream of here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import jwt

from bff.auth.opaque import ACCESS_PREFIX, OpaqueTokens
from bff.auth.principal import Principal
from bff.auth.refresh import AccessRef, Grant, InvalidGrant, RefreshTokens, new_family
from bff.auth.revocation import Revocations
from bff.auth.tokens import TokenSigner, TokenVerifier
from bff.errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh answers (RFC 6749 section 5.1, and `AuthPayload`)."""

    access_token: str
    expires_in: int
    refresh_token: str
    token_type: str = "Bearer"

    def oauth(self) -> dict[str, str | int]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


class NotIssuing(Unauthenticated):
    """This gateway has no key to sign JWTs with, so it cannot log anyone in."""

    default_message = "This gateway does not issue tokens (auth.jwt has no signing key)"


class TokenService:
    def __init__(
        self,
        *,
        token_format: Literal["jwt", "opaque"],
        signer: TokenSigner | None,
        verifier: TokenVerifier | None,
        opaque: OpaqueTokens,
        refresh: RefreshTokens,
        revocations: Revocations,
        access_ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_format = token_format
        self.signer = signer
        self.verifier = verifier
        self.opaque = opaque
        self.refresh_tokens = refresh
        self.revocations = revocations
        self.access_ttl = access_ttl
        self.clock = clock

    @property
    def issues(self) -> bool:
        return self.token_format == "opaque" or self.signer is not None

    async def login(self, sub: str, scopes: Sequence[str], roles: Sequence[str]) -> TokenPair:
        """Tokens for an identity the auth service has just vouched for: a new family."""
        return await self._issue(Grant(sub, tuple(scopes), tuple(roles), new_family()))

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: spend `refresh_token` for a new pair; a reused one revokes its family."""
        used = await self.refresh_tokens.use(refresh_token)
        if isinstance(used, Grant):
            return await self._issue(used)
        if isinstance(used, AccessRef):
            await self._revoke_access(used)
            raise InvalidGrant("Refresh token already used; its whole family is revoked")
        raise InvalidGrant("Invalid, expired or revoked refresh token")

    async def _issue(self, grant: Grant) -> TokenPair:
        ttl = self.access_ttl
        if self.token_format == "opaque":
            token, claims = await self.opaque.issue(
                grant.sub, grant.scopes, grant.roles, ttl, grant.family
            )
        elif self.signer is not None:
            token, claims = self.signer.issue(
                grant.sub, grant.scopes, ttl=ttl, roles=grant.roles, extra={"fam": grant.family}
            )
        else:
            raise NotIssuing()
        access = AccessRef(self.token_format, claims["jti"], float(claims["exp"]))
        refresh_token = await self.refresh_tokens.issue(grant, access)
        return TokenPair(token, int(ttl), refresh_token)

    async def logout(self, principal: Principal) -> None:
        """Revoke the presented access token and the refresh family it came with."""
        claims = principal.claims
        if claims.get("iss") != self._issuer:
            return  # another issuer's token: it is revoked at that issuer
        family = claims.get("fam")
        if isinstance(family, str):
            await self.refresh_tokens.revoke_family(family)
        jti, exp = claims.get("jti"), claims.get("exp")
        if isinstance(jti, str) and isinstance(exp, int | float):
            fmt = "opaque" if claims.get("token_type") == "opaque" else "jwt"
            await self._revoke_access(AccessRef(fmt, jti, float(exp)))

    async def revoke(self, token: str) -> None:
        """RFC 7009: revoke `token` whatever it is; an unknown or invalid one is a no-op."""
        family = await self.refresh_tokens.family_of(token)
        if family is not None:
            access = await self.refresh_tokens.revoke_family(family)
            if access is not None:
                await self._revoke_access(access)
            return
        if token.startswith(ACCESS_PREFIX):
            try:
                principal = await self.opaque.principal(token)
            except Unauthenticated:
                return
            await self.opaque.revoke(str(principal.claims["jti"]))
            return
        if self.verifier is not None:
            try:
                principal = self.verifier.verify(token)
            except Unauthenticated:
                return
            jti = principal.claims.get("jti")
            if isinstance(jti, str):
                await self.revocations.revoke(jti, float(principal.claims["exp"]))

    async def _revoke_access(self, access: AccessRef) -> None:
        if access.format == "opaque":
            await self.opaque.revoke(access.jti)
        elif access.exp > self.clock() - 60:
            await self.revocations.revoke(access.jti, access.exp)

    @property
    def _issuer(self) -> str:
        return self.opaque.issuer


def unverified_issuer(token: str) -> str | None:
    """The `iss` a JWT claims, read without checking it (only to choose who checks it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None
