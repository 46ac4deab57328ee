"""Verify (and, for the demo and tests, sign) the gateway's JWT access tokens.

Verification pins the algorithm to the configured one (so `alg: none` and HS/RS confusion are
refused), and requires `exp`, `iss`, `aud` and `sub`. Every failure is `Unauthenticated` with a
short reason; the token itself never appears in a message.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import jwt

from bff.auth.principal import Principal
from bff.errors import Unauthenticated

REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


LEEWAY = 5
CACHE_SIZE = 4096


class TokenVerifier:
    """Verifies tokens, remembering the ones it has verified until they expire.

    Checking a signature costs more than the rest of a small GraphQL request; clients send
    the same token many times. Only successfully verified tokens are remembered (keyed by
    the whole token), and expiry is checked again on every use.
    """

    def __init__(
        self,
        algorithm: str,
        key: str | bytes,
        issuer: str,
        audience: str,
        *,
        by_kid: Mapping[str, tuple[str, str | bytes]] | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.key = key
        self.issuer = issuer
        self.audience = audience
        # Other keys (rotation), by `kid`, each with its one algorithm; a token without a
        # known `kid` is checked with the main key.
        self.by_kid = dict(by_kid or {})
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str, now: float | None = None) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if (time.time() if now is None else now) <= expires + LEEWAY:
                return principal
            del self._verified[token]
            raise Unauthenticated("Token expired")
        principal = self._decode(token)
        self._verified[token] = (principal, float(principal.claims["exp"]))
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def cached(self, token: str, now: float) -> Principal | None:
        """The principal of a token verified before and not expired, else None."""
        cached = self._verified.get(token)
        if cached is not None and now <= cached[1] + LEEWAY:
            return cached[0]
        return None

    def _key_for(self, token: str) -> tuple[str, str | bytes]:
        if self.by_kid:
            try:
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.PyJWTError as exc:
                raise Unauthenticated("Invalid token") from exc
            if isinstance(kid, str) and kid in self.by_kid:
                return self.by_kid[kid]
        return self.algorithm, self.key

    def _decode(self, token: str) -> Principal:
        algorithm, key = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("Token audience is not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("Token issuer is not accepted") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Invalid token") from exc
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    scope = claims.get("scope", "")
    if not isinstance(scope, str) or not isinstance(claims.get("sub"), str):
        raise Unauthenticated("Invalid token")
    roles = claims.get("roles", [])
    return Principal(
        sub=claims["sub"],
        scopes=frozenset(scope.split()),
        roles=frozenset(r for r in roles if isinstance(r, str))
        if isinstance(roles, list)
        else frozenset(),
        claims=claims,
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header; a malformed header is an error."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthenticated("Malformed Authorization header")
    return token


class TokenSigner:
    def __init__(
        self,
        algorithm: str,
        key: str | bytes,
        issuer: str,
        audience: str,
        *,
        kid: str | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.headers = {"kid": kid} if kid else None

    def sign(
        self,
        sub: str,
        scopes: Iterable[str] = (),
        *,
        ttl: float = 900,
        roles: Iterable[str] = (),
        now: float | None = None,
    ) -> str:
        return self.issue(sub, scopes, ttl=ttl, roles=roles, now=now)[0]

    def issue(
        self,
        sub: str,
        scopes: Iterable[str] = (),
        *,
        ttl: float = 900,
        roles: Iterable[str] = (),
        now: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A signed token and its claims (`jti` and `exp` are what revocation needs)."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": issued,
            "exp": issued + int(ttl),
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scopes),
            "roles": list(roles),
            **(extra or {}),
        }
        token = jwt.encode(claims, self.key, algorithm=self.algorithm, headers=self.headers)
        return token, claims
