"""Refresh tokens: opaque, stored, single-use, in families.

A login starts a family; each refresh swaps the presented token for a new one in the same
family. A refresh reads the presented token's grant (`check`), then rotates it (`rotate`): the
store spends the presented token, stores the new one and repoints the family record in one
step (`TokenStore.rotate`), so a store failing midway never spends a token without its
successor; of two concurrent rotations of one token exactly one is applied. A token presented
again after its rotation (spent, or no longer the one its family names) means it leaked: the
whole family is revoked (its live refresh token and every access token issued in it since the
login), for every replica, since all of it lives in the store.

Store keys, all of a family under its hash tag (one Redis Cluster slot, so that one script
rotates them): `rt:{<family>}<digest>` -> the grant (`"used"` once spent), with the refresh
TTL; `fam:{<family>}` -> the family's live refresh token and the access tokens issued in it
that have not expired yet (`at`: a list of `[format, jti, exp]`; a record written before
families kept the whole list holds one triple, read as a list of one), or `"revoked"` once
revoked.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from bff.auth.store import USED, Rotation, TokenStore, digest
from bff.errors import Unauthenticated
from bff.shared_state import tag

REFRESH_PREFIX = "bfr_"
MAX_TOKEN = 128
FAMILY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what `new_family` makes: no hash tag braces
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
    presented: str | None = None  # the digest of the refresh token being rotated
    record: str | None = None  # the family record as `check` read it


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
        """The first refresh token of a new family (a login), which owns `access`. Its grant
        goes first: until the family record names it, nobody can use it."""
        token, key, value, family = self._new(grant, access)
        await self.store.put(grant_key(grant.family, key), value, self.ttl)
        await self.store.put(family_key(grant.family), family, self.ttl)
        return token

    async def rotate(self, grant: Grant, access: AccessRef) -> str | Revoked | None:
        """Spend the token `grant` was read from for the next one of its family, which now
        also owns `access`, in one step of the store. Or (another use of the token came
        first: a reuse) the family, revoked now; or None when the family was revoked meanwhile.
        """
        if grant.presented is None or grant.record is None:
            raise ValueError("rotate needs a grant read by check()")
        token, key, value, family = self._new(grant, access)
        rotation = Rotation(
            spent=grant_key(grant.family, grant.presented),
            fresh=grant_key(grant.family, key),
            grant=value,
            family=family_key(grant.family),
            expected=grant.record,
            record=family,
            ttl=self.ttl,
        )
        if await self.store.rotate(rotation):
            return token
        live = await self.store.get(family_key(grant.family))
        if live is not None and live != REVOKED:
            return await self.revoke_family(grant.family)  # rotated by the other use
        return None

    def _new(self, grant: Grant, access: AccessRef) -> tuple[str, str, str, str]:
        """A new refresh token of `grant`'s family, its digest and grant; and the family's
        record naming it, to write."""
        token = f"{REFRESH_PREFIX}{grant.family}.{secrets.token_urlsafe(32)}"
        key = digest(token)
        record = {"sub": grant.sub, "scope": grant.scopes, "roles": grant.roles}
        now = self.clock()
        owned = [a for a in grant.access if a.exp > now and a.jti != access.jti] + [access]
        family = {"rt": key, "at": [[a.format, a.jti, a.exp] for a in owned]}
        return token, key, orjson.dumps(record).decode(), orjson.dumps(family).decode()

    async def check(self, token: str) -> Grant | Revoked | None:
        """What presenting `token` means: its grant, to `rotate`; or (reuse) the family,
        revoked now; or None for a token that is unknown, expired or of a family revoked
        before. Nothing is spent here: a refresh that fails before its rotation leaves the
        token as it was."""
        family = family_in(token)
        if family is None:
            return None
        key = digest(token)
        grant = await self.store.get(grant_key(family, key))
        if grant is None:
            return None
        if grant == USED:  # a second use: whoever holds it now, the family is compromised
            return await self.revoke_family(family)
        live = await self.store.get(family_key(family))
        if live is None or live == REVOKED:
            return None
        owner: dict[str, Any] = orjson.loads(live)
        if owner.get("rt") != key:  # rotated away (its marking as used lost): the same
            return await self.revoke_family(family)
        record: dict[str, Any] = orjson.loads(grant)
        return Grant(
            str(record["sub"]),
            tuple(record["scope"]),
            tuple(record["roles"]),
            family,
            access_refs(owner.get("at")),
            presented=key,
            record=live,
        )

    async def revoke_family(self, family: str) -> Revoked:
        """Delete the family's live refresh token; what it issued, for the caller to revoke.

        The record becomes `REVOKED` in one atomic swap: a refresh of the family in flight
        either rotated before (and its access token is in the record, revoked here) or finds
        the record changed when it rotates (and withdraws its tokens, see `rotate`)."""
        raw = await self.store.swap(family_key(family), REVOKED)
        if raw is None or raw == REVOKED:
            return Revoked(family, ())
        record = orjson.loads(raw)
        await self.store.delete(grant_key(family, str(record["rt"])))
        return Revoked(family, access_refs(record.get("at")))

    async def family_of(self, token: str) -> str | None:
        """The family of a stored refresh token, live or used (for RFC 7009 revocation)."""
        family = family_in(token)
        if family is None or await self.store.get(grant_key(family, digest(token))) is None:
            return None
        return family


def grant_key(family: str, key: str) -> str:
    """The store key of a refresh token's grant: under its family's hash tag."""
    return "rt:" + tag(family) + key


def family_key(family: str) -> str:
    return "fam:" + tag(family)


def family_in(token: str) -> str | None:
    """The family id a refresh token carries (`bfr_<family>.<secret>`), if well-formed."""
    if not token.startswith(REFRESH_PREFIX) or len(token) > MAX_TOKEN:
        return None
    family, dot, secret = token[len(REFRESH_PREFIX) :].partition(".")
    return family if dot and secret and FAMILY.fullmatch(family) else None
