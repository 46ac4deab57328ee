"""Verify (and, for the demo and tests, sign) the gateway's JWT access tokens.

Verification pins the algorithm to the configured one (so `alg: none` and HS/RS confusion are
refused), and requires `exp`, `iss`, `aud` and `sub`. Every failure is `Unauthenticated` with a
short reason; the token itself never appears in a message.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
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

    def __init__(self, algorithm: str, key: str | bytes, issuer: str, audience: str) -> None:
        self.algorithm = algorithm
        self.key = key
        self.issuer = issuer
        self.audience = audience
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

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
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
    def __init__(self, algorithm: str, key: str | bytes, issuer: str, audience: str) -> None:
        self.algorithm = algorithm
        self.key = key
        self.issuer = issuer
        self.audience = audience

    def sign(
        self,
        sub: str,
        scopes: Iterable[str] = (),
        *,
        ttl: float = 900,
        roles: Iterable[str] = (),
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": issued,
            "exp": issued + int(ttl),
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scopes),
            "roles": list(roles),
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm)
