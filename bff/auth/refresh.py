"""Refresh tokens: opaque, stored, single-use, in families.

A login starts a family; each refresh swaps the presented token for a new one in the same
family. Using a refresh token marks it used (an atomic swap of its stored value, so of two
concurrent uses exactly one wins). A used token presented again means it leaked: the whole
family is revoked (its live refresh token and every access token issued in it since the
login), for every replica, since all of it lives in the store.

Store keys: `rt:<digest>` -> the grant (`"used"` once spent), with the refresh TTL;
`fam:<family>` -> the family's live refresh token and the access tokens issued in it that
have not expired yet (`at`: a list of `[format, jti, exp]`; a record written before families
kept the whole list holds one triple, read as a list of one), or `"revoked"` once revoked.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from bff.auth.store import TokenStore, digest
from bff.errors import Unauthenticated

REFRESH_PREFIX = "bfr_"
MAX_TOKEN = 128
USED = '"used"'  # what a spent refresh token's record becomes
REVOKED = '"revoked"'  # what a revoked family's record becomes, until it expires


class InvalidGrant(Unauthenticated):
    """A bad, expired, revoked or reused refresh token, or refused credentials.

    `UNAUTHENTICATED` on GraphQL; `400 invalid_grant` on the OAuth-style REST endpoints.
    """

    default_message = "Invalid grant"


@dataclass(frozen=True, slots=True)
class AccessRef:
    """Enough of an access token to revoke it: its format, id and expiry."""

    format: str
    jti: str
    exp: float


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a family of tokens was issued to, and the access tokens issued in it so far."""

    sub: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    family: str
    access: tuple[AccessRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Revoked:
    """A family just revoked, with the access tokens it had issued and not yet expired."""

    family: str
    access: tuple[AccessRef, ...]


def access_refs(raw: Any) -> tuple[AccessRef, ...]:
    """The `at` list of a family record (or the single triple of an older record)."""
    if not isinstance(raw, list) or not raw:
        return ()
    triples: Iterable[Any] = [raw] if isinstance(raw[0], str) else raw
    return tuple(AccessRef(str(f), str(j), float(e)) for f, j, e in triples)


def new_family() -> str:
    return secrets.token_urlsafe(12)


class RefreshTokens:
    def __init__(
        self, store: TokenStore, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock

    async def issue(self, grant: Grant, access: AccessRef) -> str:
        """The first refresh token of a new family (a login), which owns `access`."""
        token, family = await self._write(grant, access)
        await self.store.put("fam:" + grant.family, family, self.ttl)
        return token

    async def rotate(self, grant: Grant, access: AccessRef) -> str | None:
        """The next refresh token of `grant`'s family, which now also owns `access`; None
        when the family was revoked meanwhile (a reuse racing this refresh)."""
        token, family = await self._write(grant, access)
        old = await self.store.swap("fam:" + grant.family, family, self.ttl)
        if old is None or old == REVOKED:
            if old == REVOKED:
                await self.store.put("fam:" + grant.family, REVOKED, self.ttl)
            await self.store.delete("rt:" + digest(token))
            return None
        return token

    async def _write(self, grant: Grant, access: AccessRef) -> tuple[str, str]:
        """A new refresh token, stored; and its family's record, to write."""
        token = f"{REFRESH_PREFIX}{grant.family}.{secrets.token_urlsafe(32)}"
        key = digest(token)
        record = {"sub": grant.sub, "scope": grant.scopes, "roles": grant.roles}
        now = self.clock()
        owned = [a for a in grant.access if a.exp > now and a.jti != access.jti] + [access]
        family = {"rt": key, "at": [[a.format, a.jti, a.exp] for a in owned]}
        await self.store.put("rt:" + key, orjson.dumps(record).decode(), self.ttl)
        return token, orjson.dumps(family).decode()

    async def use(self, token: str) -> Grant | Revoked | None:
        """Spend `token`: its grant; or (reuse) the family, revoked now; or None for a token
        that is unknown, expired or of a family revoked before."""
        family = family_in(token)
        if family is None:
            return None
        key = digest(token)
        old = await self.store.swap("rt:" + key, USED)
        if old is None:
            return None
        if old == USED:
            # A second use: whoever holds it now, the family is compromised.
            return await self.revoke_family(family)
        live = await self.store.get("fam:" + family)
        if live is None or live == REVOKED:
            return None
        owner: dict[str, Any] = orjson.loads(live)
        if owner.get("rt") != key:
            return None
        record: dict[str, Any] = orjson.loads(old)
        return Grant(
            str(record["sub"]),
            tuple(record["scope"]),
            tuple(record["roles"]),
            family,
            access_refs(owner.get("at")),
        )

    async def revoke_family(self, family: str) -> Revoked:
        """Delete the family's live refresh token; what it issued, for the caller to revoke.

        The record becomes `REVOKED` in one atomic swap: a refresh of the family in flight
        either wrote its access token into the record before (and it is revoked here) or
        finds `REVOKED` when it writes (and withdraws its tokens, see `rotate`)."""
        raw = await self.store.swap("fam:" + family, REVOKED)
        if raw is None or raw == REVOKED:
            return Revoked(family, ())
        record = orjson.loads(raw)
        await self.store.delete("rt:" + str(record["rt"]))
        return Revoked(family, access_refs(record.get("at")))

    async def family_of(self, token: str) -> str | None:
        """The family of a stored refresh token, live or used (for RFC 7009 revocation)."""
        family = family_in(token)
        if family is None or await self.store.get("rt:" + digest(token)) is None:
            return None
        return family


def family_in(token: str) -> str | None:
    """The family id a refresh token carries (`bfr_<family>.<secret>`), if well-formed."""
    if not token.startswith(REFRESH_PREFIX) or len(token) > MAX_TOKEN:
        return None
    family, dot, secret = token[len(REFRESH_PREFIX) :].partition(".")
    return family if dot and family and secret else None
