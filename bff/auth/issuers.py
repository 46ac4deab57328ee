"""Tokens of external identity providers (`auth.trusted_issuers`), verified with their JWKS.

Each issuer's key set is fetched (through an injected fetcher: the HTTP client lives in the
HTTP layer) and cached. A token whose `kid` is not in the cache triggers a refetch at once,
the provider having rotated its keys, but at most one refetch per issuer per
`REFETCH_INTERVAL` (SPEC: 10 s), so a flood of made-up `kid`s cannot hammer the provider.
The cache is also refreshed when older than `MAX_AGE`, so a key the provider withdrew stops
being trusted; a failed refresh keeps the keys already known.

A key verifies only with the algorithms it allows: its `alg`, or else those of its type (RSA:
RS*/PS*, EC: the one of its curve, OKP: EdDSA). Symmetric (`oct`) keys are never taken from a
JWKS, and `alg: none` matches no key, so neither `none` nor HS/RS confusion can get through.
`iss`, `aud`, `exp` (and `nbf` when present) are checked with a small leeway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson

from bff.auth.principal import Principal
from bff.errors import Unauthenticated, UpstreamUnavailable

log = logging.getLogger("bff.auth")

Fetch = Callable[[str], Awaitable[bytes]]

REFETCH_INTERVAL = 10.0
MAX_AGE = 300.0
LEEWAY = 30
MAX_KEYS = 64
CACHE_SIZE = 4096
BY_TYPE: dict[str, tuple[str, ...]] = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC:P-256": ("ES256",),
    "EC:P-384": ("ES384",),
    "EC:P-521": ("ES512",),
    "OKP": ("EdDSA",),
}


@dataclass(frozen=True, slots=True)
class Issuer:
    issuer: str
    jwks_url: str
    audience: str


def allowed_algorithms(jwk: dict[str, Any]) -> tuple[str, ...]:
    kty = jwk.get("kty")
    family = BY_TYPE.get(f"EC:{jwk.get('crv')}" if kty == "EC" else str(kty), ())
    alg = jwk.get("alg")
    if alg is not None:
        return (alg,) if alg in family else ()
    return family


def parse_jwks(body: bytes) -> dict[tuple[str | None, str], Any]:
    """(kid, algorithm) -> verification key, for every usable signing key of a JWKS."""
    document = orjson.loads(body)
    found: dict[tuple[str | None, str], Any] = {}
    for jwk in document.get("keys", [])[:MAX_KEYS]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        for algorithm in allowed_algorithms(jwk):
            try:
                found[(kid, algorithm)] = jwt.PyJWK(jwk, algorithm).key
            except jwt.PyJWTError:
                log.warning("trusted issuer: unusable key %r skipped", kid)
    return found


@dataclass
class IssuerKeys:
    """One issuer's cached keys and when they were (or were last tried to be) fetched."""

    issuer: Issuer
    keys: dict[tuple[str | None, str], Any] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    tried_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TrustedIssuers:
    def __init__(
        self,
        issuers: Iterable[Issuer],
        fetch: Fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.clock = clock
        self._by_issuer = {i.issuer: IssuerKeys(i) for i in issuers}
        # Verified tokens until they expire, as for the gateway's own (a signature check
        # costs more than the rest of a small request); dropped whenever a key set changes.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def cached(self, token: str, now: float) -> Principal | None:
        """The principal of a token verified before and not expired (wall clock `now`)."""
        hit = self._verified.get(token)
        if hit is not None and now <= hit[1] + LEEWAY:
            return hit[0]
        return None

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._by_issuer

    async def verify(self, token: str, issuer: str) -> Principal:
        """The principal of a token of trusted `issuer`; `Unauthenticated` when it is bad."""
        entry = self._by_issuer[issuer]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Invalid token") from exc
        kid, algorithm = header.get("kid"), header.get("alg")
        if not isinstance(algorithm, str) or not (kid is None or isinstance(kid, str)):
            raise Unauthenticated("Invalid token")
        key = await self._key(entry, kid, algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=entry.issuer.audience,
                issuer=entry.issuer.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("Token audience is not accepted") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Invalid token") from exc
        principal = external_principal(claims)
        self._verified[token] = (principal, float(claims["exp"]))
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _key(self, entry: IssuerKeys, kid: str | None, algorithm: str) -> Any:
        if self.clock() - entry.fetched_at > MAX_AGE:
            await self._refetch(entry)
        key = entry.keys.get((kid, algorithm))
        if key is None and not any(k == kid for k, _ in entry.keys):
            await self._refetch(entry)  # an unknown kid: the provider may have rotated
            key = entry.keys.get((kid, algorithm))
        if key is None:
            if entry.fetched_at == float("-inf"):
                raise UpstreamUnavailable("identity provider", "Identity provider keys unavailable")
            raise Unauthenticated("Token signed with an unknown key or algorithm")
        return key

    async def _refetch(self, entry: IssuerKeys) -> None:
        async with entry.lock:
            if self.clock() - entry.tried_at < REFETCH_INTERVAL:
                return
            entry.tried_at = self.clock()
            try:
                keys = parse_jwks(await self.fetch(entry.issuer.jwks_url))
                if keys.keys() != entry.keys.keys():
                    self._verified.clear()  # a withdrawn key must not live on in the cache
                entry.keys = keys
                entry.fetched_at = self.clock()
            except (OSError, ValueError, AttributeError, UpstreamUnavailable) as exc:
                log.warning(
                    "trusted issuer %s: cannot fetch its keys (%s); keeping %d known",
                    entry.issuer.issuer,
                    type(exc).__name__,
                    len(entry.keys),
                )


def external_principal(claims: dict[str, Any]) -> Principal:
    """The same principal shape as the gateway's own tokens: subject and scopes.

    Scopes come from `scope` (a space-separated string, OAuth) or `scp` (a list, as some
    providers write them).
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthenticated("Invalid token")
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, str):
        scopes = frozenset(scope.split())
    elif isinstance(scope, list):
        scopes = frozenset(s for s in scope if isinstance(s, str))
    else:
        raise Unauthenticated("Invalid token")
    return Principal(sub=sub, scopes=scopes, claims=claims)
