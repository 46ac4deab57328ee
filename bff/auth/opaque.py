"""Opaque access tokens: random strings whose claims live in the token store.

A token is `bfa_` and 256 random bits; the store keeps its claims under the token's digest
for the access TTL. Looking a token up costs a store round trip, so each gateway remembers
the tokens it has looked up for `CACHE_TTL` (a bounded LRU): a busy client costs one round
trip a second, not one per request. The price is the revocation delay: a token revoked
through another replica is still accepted here for at most `CACHE_TTL` (1 s, within SPEC's
2 s); a revocation through this replica counts at once.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from bff.auth.principal import Principal
from bff.auth.store import TokenStore, digest
from bff.errors import Unauthenticated

ACCESS_PREFIX = "bfa_"
CACHE_TTL = 1.0
CACHE_SIZE = 10_000
MAX_TOKEN = 128


def opaque_principal(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles", [])
    return Principal(
        sub=str(claims["sub"]),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        roles=frozenset(r for r in roles if isinstance(r, str)),
        claims=claims,
    )


class OpaqueTokens:
    def __init__(
        self,
        store: TokenStore,
        issuer: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.clock = clock
        self.monotonic = monotonic
        # token -> (principal, monotonic deadline), oldest first; and token id -> token, so a
        # revocation (which knows the id only) can drop the token from the cache
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._ids: dict[str, str] = {}

    async def issue(
        self, sub: str, scopes: Iterable[str], roles: Iterable[str], ttl: float, family: str
    ) -> tuple[str, dict[str, Any]]:
        """A new token and its claims (`jti` is the store's name for it)."""
        token = ACCESS_PREFIX + secrets.token_urlsafe(32)
        issued = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "scope": " ".join(scopes),
            "roles": list(roles),
            "iat": issued,
            "exp": issued + int(ttl),
            "jti": digest(token),
            "fam": family,
            "token_type": "opaque",
        }
        await self.store.put("at:" + claims["jti"], orjson.dumps(claims).decode(), ttl)
        return token, claims

    async def principal(self, token: str) -> Principal:
        """The principal of a live token; `Unauthenticated` when unknown, expired or revoked."""
        cached = self._cache.get(token)
        if cached is not None and cached[1] > self.monotonic():
            return cached[0]
        if len(token) > MAX_TOKEN:
            raise Unauthenticated("Invalid token")
        key = digest(token)
        value = await self.store.get("at:" + key)
        if value is None:
            self._forget(key)
            raise Unauthenticated("Invalid, expired or revoked token")
        principal = opaque_principal(orjson.loads(value))
        # Remembered for CACHE_TTL, or until it expires if that is sooner.
        left = float(principal.claims["exp"]) - self.clock()
        self._cache[token] = (principal, self.monotonic() + min(CACHE_TTL, left))
        self._ids[key] = token
        if len(self._cache) > CACHE_SIZE:
            _, (old_principal, _) = self._cache.popitem(last=False)
            self._ids.pop(str(old_principal.claims["jti"]), None)
        return principal

    def _forget(self, token_id: str) -> None:
        token = self._ids.pop(token_id, None)
        if token is not None:
            self._cache.pop(token, None)

    async def revoke(self, *token_ids: str) -> None:
        """Delete the tokens stored as `token_ids` (their digests, the principals' `jti`s)."""
        for token_id in token_ids:
            self._forget(token_id)
        await self.store.delete(*("at:" + token_id for token_id in token_ids))
