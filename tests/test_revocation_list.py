"""The revocation list's freshness and degraded mode, as pure decisions over an injected clock
and a store that answers or not (no sleeps, no network)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bff.auth.revocation import Revocations
from bff.auth.store import TokenStoreUnavailable
from bff.auth.store_memory import MemoryTokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FlakyStore(MemoryTokenStore):
    """A memory store whose revocation list can be made unreadable, counting the reads."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.down = False
        self.reads = 0

    async def revoked_jtis(self, now: float) -> dict[str, float]:
        self.reads += 1
        if self.down:
            raise TokenStoreUnavailable()
        return await super().revoked_jtis(now)


def test_a_revocation_by_another_replica_is_seen_once_the_list_is_stale() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = FlakyStore(clock)
        here = Revocations(store, clock)
        assert not await here.is_revoked("j1")  # first use: a read, awaited
        await store.revoke_jti("j1", clock.now + 60)  # "another replica"
        assert not await here.is_revoked("j1")  # fresh list: no read
        reads = store.reads
        clock.now += 2  # older than STALE_AFTER: the request waits for a fresh read
        assert await here.is_revoked("j1")
        assert store.reads == reads + 1

    asyncio.run(scenario())


def test_a_revocation_made_here_counts_at_once() -> None:
    async def scenario() -> None:
        clock = Clock()
        here = Revocations(FlakyStore(clock), clock)
        assert not await here.is_revoked("j2")
        await here.revoke("j2", clock.now + 60)
        assert await here.is_revoked("j2")

    asyncio.run(scenario())


def test_an_unreadable_store_degrades_and_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bff.auth")

    async def scenario() -> None:
        clock = Clock()
        store = FlakyStore(clock)
        here = Revocations(store, clock)
        await here.revoke("known", clock.now + 600)
        store.down = True
        for _ in range(30):  # 30 s of requests, one every second
            clock.now += 1
            assert await here.is_revoked("known")  # the last list read still counts
            assert not await here.is_revoked("other")  # and the rest verify
            await asyncio.sleep(0)  # let background reads run
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert store.reads >= 10  # retried in the background meanwhile
        clock.now += 61
        await here.refresh()
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
        store.down = False
        await here.refresh()
        assert "resumed" in caplog.records[-1].getMessage()

    asyncio.run(scenario())
