"""Revoked JWT ids and refresh families, checked per request without a store round trip.

A JWT is refused when its `jti` is revoked or when its `fam` (the refresh family it was issued
in) is: revoking a family (logout, refresh-token reuse, revoking a refresh token) so refuses
every access token issued in it since the login, by one entry, without listing them. In the
store a family is an id of the revoked list like a `jti`, spelt `fam:<family>`
(`FAMILY_PREFIX`); here the two live in two dicts, so a check costs two dict lookups.

Each gateway keeps the current list of revoked `jti`s in memory and reads it again from the
store when it is older than `REFRESH_AFTER` (in the background, the request does not wait),
or waits for a fresh read when it is older than `STALE_AFTER` (an idle replica must not judge
by an old list). A token revoked through any replica is therefore refused by every replica
within about `STALE_AFTER` seconds (SPEC: 2 s), and a revocation made here counts at once.

When the store cannot be read, JWTs keep verifying on the last list read (the signature and
expiry still hold); this degraded state is logged at most once a minute, retried at most once
a second in the background, and ends by itself when the store answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bff.auth.store import TokenStore, TokenStoreUnavailable

log = logging.getLogger("bff.auth")

REFRESH_AFTER = 0.5
STALE_AFTER = 1.5
RETRY_AFTER_FAILURE = 1.0
LOG_EVERY = 60.0
LEEWAY = 5  # as the verifier's: an entry lives as long as its token could still be accepted
FAMILY_PREFIX = "fam:"  # a revoked family's id in the store's revoked list (a jti has no ":")


class Revocations:
    def __init__(self, store: TokenStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._revoked: dict[str, float] = {}  # jti -> until
        self._families: dict[str, float] = {}  # family -> until
        self._mine: dict[str, float] = {}  # revoked here (store ids): kept across a racing read
        self._read_at = float("-inf")  # when the list was last read (or last failed to be)
        self._degraded = False
        self._logged_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """Whether `jti`, or the `family` it was issued in, is revoked; costs two dict
        lookups on a fresh list."""
        age = self.clock() - self._read_at
        if age > REFRESH_AFTER:
            if age > STALE_AFTER and not self._degraded:
                await self.refresh()
            elif self._refreshing is None:
                self._refreshing = asyncio.get_running_loop().create_task(self._background())
        return jti in self._revoked or (family is not None and family in self._families)

    async def revoke(self, jti: str, expires: float) -> None:
        """Revoke `jti` until `expires`, here at once and everywhere through the store."""
        await self.store.revoke_jti(jti, expires + LEEWAY)
        self._revoked[jti] = self._mine[jti] = expires + LEEWAY

    async def revoke_family(self, family: str, expires: float) -> None:
        """Revoke every JWT of `family` that expires by `expires`, here at once and
        everywhere through the store."""
        until = expires + LEEWAY
        await self.store.revoke_jti(FAMILY_PREFIX + family, until)
        self._families[family] = self._mine[FAMILY_PREFIX + family] = until

    async def refresh(self) -> None:
        now = self.clock()
        try:
            revoked = await self.store.revoked_jtis(now)
        except TokenStoreUnavailable:
            self._read_at = now - REFRESH_AFTER + RETRY_AFTER_FAILURE
            if not self._degraded or now - self._logged_at >= LOG_EVERY:
                log.warning(
                    "token store unreachable: JWT revocations cannot be checked; "
                    "tokens verify on the last list read until it answers again"
                )
                self._logged_at = now
            self._degraded = True
            return
        if self._degraded:
            log.info("token store reachable again: JWT revocation checks resumed")
        self._degraded = False
        self._mine = {j: e for j, e in self._mine.items() if e > now}
        revoked.update(self._mine)
        self._revoked, self._families = split_families(revoked)
        self._read_at = now

    async def _background(self) -> None:
        try:
            await self.refresh()
        finally:
            self._refreshing = None

    async def aclose(self) -> None:
        task = self._refreshing
        if task is not None:
            task.cancel()


def split_families(revoked: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """The store's revoked list as (jti -> until, family -> until)."""
    jtis: dict[str, float] = {}
    families: dict[str, float] = {}
    cut = len(FAMILY_PREFIX)
    for key, until in revoked.items():
        if key.startswith(FAMILY_PREFIX):
            families[key[cut:]] = until
        else:
            jtis[key] = until
    return jtis, families
