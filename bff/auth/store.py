"""The token store: where refresh tokens, opaque access tokens and revocations live.

One small interface, three backends: `memory` (one process: the demo, a single gateway), and
`redis` or `memcached` (every replica sees the same tokens). Keys are short logical names
(`rt:<hash>`); a backend namespaces them and gives every one a TTL, so dead tokens never pile
up. Tokens are stored under a digest of their value, so a dump of the store holds no usable
token.

A backend that cannot be reached raises `TokenStoreUnavailable` (503, `UPSTREAM_UNAVAILABLE`):
whoever needs the store to decide must fail closed.

Changes for family-wide revocation, for a new backend to follow: `swap` takes an optional
`ttl` (a new expiry instead of the kept one), and the revoked list (`revoke_jti`,
`revoked_jtis`) holds two kinds of ids, which a backend need not tell apart: JWT ids, and
revoked refresh families spelt `fam:<family>` (every JWT carrying that `fam` claim is refused,
see `bff.auth.revocation`). A backend stores any id of up to 64 characters with its expiry and
returns it as given. The family records of `bff.auth.refresh` (`fam:<family>` keys of
`get`/`put`/`swap`, a separate namespace) list every live access token of the family, so that
opaque ones can be deleted with it.

Changes for atomic rotation: `rotate` applies one refresh (spend the presented token, store
the new one, repoint the family record) as one step, so that a store failing midway never
leaves a user with a spent token and no new one. The keys of one rotation share a hash tag
(`{<family>}`), so a Redis backend runs it as one script, on a Redis Cluster too.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from bff.errors import UpstreamUnavailable


class TokenStoreUnavailable(UpstreamUnavailable):
    status: ClassVar[int] = 503
    default_message = "Token store unavailable"

    def __init__(self) -> None:
        super().__init__("token store", self.default_message)


USED = '"used"'  # what a spent refresh token's value becomes


@dataclass(frozen=True, slots=True)
class Rotation:
    """One refresh, as a store applies it: `spent` (the presented token's grant) becomes
    `USED` (its TTL kept), `fresh` holds `grant`, and `family` goes from `expected` (what the
    refresh read) to `record`; `fresh` and `family` live `ttl` seconds from now."""

    spent: str
    fresh: str
    grant: str
    family: str
    expected: str
    record: str
    ttl: float


def digest(token: str) -> str:
    """The store's name for a token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore(ABC):
    kind: ClassVar[str]

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The value at `key`, or None when it is missing or expired."""

    @abstractmethod
    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set `key` to `value` for `ttl` seconds."""

    @abstractmethod
    async def delete(self, *keys: str) -> None:
        """Remove `keys` (missing ones are fine)."""

    @abstractmethod
    async def swap(self, key: str, value: str, ttl: float | None = None) -> str | None:
        """Atomically replace the value of an existing `key`, keeping its TTL (or giving it
        `ttl` seconds); the old value.

        None (and nothing written) when `key` does not exist: exactly one of two concurrent
        callers gets the old value, which is what makes a refresh token single-use, and what
        keeps a refresh racing its family's revocation from bringing the family back.
        """

    @abstractmethod
    async def rotate(self, rotation: Rotation) -> bool:
        """Apply `rotation` if `family` still holds `expected` and `spent` a grant (not
        `USED`); whether it is applied (True too when it already was: a retried command).

        All of it or none of it, as far as the store allows: whatever fails midway, either the
        presented token still refreshes, or the family names the new one (and the presented
        token then reads as rotated away, i.e. reused, marked `USED` or not). Of two concurrent
        rotations of one token exactly one is applied.
        """

    @abstractmethod
    async def revoke_jti(self, jti: str, expires: float) -> None:
        """Remember that `jti` is revoked until `expires` (epoch seconds): a JWT id, or a
        whole family as `fam:<family>`."""

    @abstractmethod
    async def revoked_jtis(self, now: float) -> dict[str, float]:
        """Every id revoked and not yet expired at `now` (JWT ids and `fam:<family>`
        entries alike), with its expiry."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers (readiness)."""

    async def aclose(self) -> None:
        return None
