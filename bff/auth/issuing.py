"""The gateway as token issuer: log in, refresh, revoke (SPEC section 5).

`TokenService` turns an identity the auth service vouched for into an access token (a signed
JWT or an opaque token, per `auth.token_format`) and a rotating refresh token, and revokes
them: opaque tokens by deletion, JWTs by `jti` until their `exp`, refresh tokens by family.
Revoking a family (logout, a reused refresh token, revoking a refresh token) revokes every
access token issued in it since the login: its opaque ones are deleted, its JWTs refused by
their `fam` claim (SPEC section 15).
It never sees a password: checking credentials is the auth service's job, upstream of here;
but it admits every attempt first, through the login throttle (`bff.auth.throttle`), so both
doors (REST and GraphQL) are throttled by the same budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

import jwt

from bff.auth.opaque import ACCESS_PREFIX, OpaqueTokens
from bff.auth.principal import Principal
from bff.auth.refresh import (
    AccessRef,
    Grant,
    InvalidGrant,
    RefreshTokens,
    Revoked,
    family_in,
    new_family,
)
from bff.auth.revocation import Revocations
from bff.auth.throttle import CLIENT_ADDRESS, LoginGate, family_account, username_account
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
        throttle: LoginGate | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_format = token_format
        self.signer = signer
        self.verifier = verifier
        self.opaque = opaque
        self.refresh_tokens = refresh
        self.revocations = revocations
        self.access_ttl = access_ttl
        self.throttle = throttle
        self.clock = clock

    @property
    def issues(self) -> bool:
        return self.token_format == "opaque" or self.signer is not None

    async def admit_login(self, username: str, address: str | None = None) -> None:
        """Count a login attempt on `username` from `address` (default: the request's, see
        `CLIENT_ADDRESS`) before its password is checked; `RateLimited` over the budget."""
        if self.throttle is not None:
            where = address if address is not None else CLIENT_ADDRESS.get()
            await self.throttle.admit(where, username_account(username))

    async def login(self, sub: str, scopes: Sequence[str], roles: Sequence[str]) -> TokenPair:
        """Tokens for an identity the auth service has just vouched for: a new family."""
        return await self._issue(Grant(sub, tuple(scopes), tuple(roles), new_family()))

    async def refresh(self, refresh_token: str, address: str | None = None) -> TokenPair:
        """Rotate: spend `refresh_token` for a new pair; a reused one revokes its family.
        Admitted by the login throttle first (per address and per family)."""
        if self.throttle is not None:
            family = family_in(refresh_token)
            where = address if address is not None else CLIENT_ADDRESS.get()
            await self.throttle.admit(where, None if family is None else family_account(family))
        presented = await self.refresh_tokens.check(refresh_token)
        if isinstance(presented, Grant):
            return await self._issue(presented, rotating=True)
        if isinstance(presented, Revoked):
            await self._reused(presented)
        raise InvalidGrant("Invalid, expired or revoked refresh token")

    async def _reused(self, revoked: Revoked) -> NoReturn:
        await self._revoke_family(revoked)
        raise InvalidGrant("Refresh token already used; its whole family is revoked")

    async def _issue(self, grant: Grant, *, rotating: bool = False) -> TokenPair:
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
        if not rotating:
            refresh_token = await self.refresh_tokens.issue(grant, access)
        else:
            # The access token exists before the rotation, which may not happen: nobody but
            # this refresh knows it, and it is withdrawn (or left to expire, when the store
            # went away) unless the rotation lists it in the family.
            rotated = await self.refresh_tokens.rotate(grant, access)
            if not isinstance(rotated, str):
                await self._revoke_access(access)
                if isinstance(rotated, Revoked):  # another use of the token came first
                    await self._reused(rotated)
                raise InvalidGrant("Invalid, expired or revoked refresh token")
            refresh_token = rotated
        return TokenPair(token, int(ttl), refresh_token)

    async def logout(self, principal: Principal) -> None:
        """Revoke the presented access token and the refresh family it came with."""
        claims = principal.claims
        if claims.get("iss") != self._issuer:
            return  # another issuer's token: it is revoked at that issuer
        family = claims.get("fam")
        if isinstance(family, str):
            await self._revoke_family(await self.refresh_tokens.revoke_family(family))
        jti, exp = claims.get("jti"), claims.get("exp")
        if isinstance(jti, str) and isinstance(exp, int | float):
            fmt = "opaque" if claims.get("token_type") == "opaque" else "jwt"
            await self._revoke_access(AccessRef(fmt, jti, float(exp)))

    async def revoke(self, token: str) -> None:
        """RFC 7009: revoke `token` whatever it is; an unknown or invalid one is a no-op."""
        family = await self.refresh_tokens.family_of(token)
        if family is not None:
            await self._revoke_family(await self.refresh_tokens.revoke_family(family))
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

    async def _revoke_family(self, revoked: Revoked) -> None:
        """Revoke every access token `revoked.family` issued: delete the opaque ones, and
        refuse its JWTs by their `fam` claim until the last of them has expired."""
        now = self.clock()
        jwts = [a.exp for a in revoked.access if a.format != "opaque"]
        if jwts or self.token_format == "jwt":
            # Every JWT of the family was issued by now, so none outlives now + access_ttl
            # (or the latest `exp` it was issued with, under an older `access_ttl`).
            until = max([now + self.access_ttl, *jwts])
            await self.revocations.revoke_family(revoked.family, until)
        opaque = [a.jti for a in revoked.access if a.format == "opaque"]
        if opaque:
            await self.opaque.revoke(*opaque)

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
