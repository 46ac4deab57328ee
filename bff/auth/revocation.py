"""Revoked JWT ids, checked per request without a store round trip.

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


class Revocations:
    def __init__(self, store: TokenStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._revoked: dict[str, float] = {}
        self._mine: dict[str, float] = {}  # revoked here: kept across a read that raced them
        self._read_at = float("-inf")  # when the list was last read (or last failed to be)
        self._degraded = False
        self._logged_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def is_revoked(self, jti: str) -> bool:
        """Whether `jti` is revoked; costs a dict lookup on a fresh list."""
        age = self.clock() - self._read_at
        if age > REFRESH_AFTER:
            if age > STALE_AFTER and not self._degraded:
                await self.refresh()
            elif self._refreshing is None:
                self._refreshing = asyncio.get_running_loop().create_task(self._background())
        return jti in self._revoked

    async def revoke(self, jti: str, expires: float) -> None:
        """Revoke `jti` until `expires`, here at once and everywhere through the store."""
        await self.store.revoke_jti(jti, expires + LEEWAY)
        self._revoked[jti] = self._mine[jti] = expires + LEEWAY

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
        self._revoked = revoked
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
