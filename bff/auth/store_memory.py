"""The `memory` token store: one process, no dependencies (the demo and single gateways)."""

from __future__ import annotations

import time
from collections.abc import Callable

from bff.auth.store import USED, Rotation, TokenStore

SWEEP_EVERY = 1024  # writes between two sweeps of expired keys


class MemoryTokenStore(TokenStore):
    kind = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._revoked: dict[str, float] = {}
        self._writes = 0

    def _live(self, key: str) -> tuple[str, float] | None:
        entry = self._values.get(key)
        if entry is not None and entry[1] <= self.clock():
            del self._values[key]
            return None
        return entry

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            now = self.clock()
            self._values = {k: v for k, v in self._values.items() if v[1] > now}
            self._revoked = {k: e for k, e in self._revoked.items() if e > now}

    async def get(self, key: str) -> str | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def put(self, key: str, value: str, ttl: float) -> None:
        self._values[key] = (value, self.clock() + ttl)
        self._wrote()

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._values.pop(key, None)

    async def swap(self, key: str, value: str, ttl: float | None = None) -> str | None:
        entry = self._live(key)
        if entry is None:
            return None
        self._values[key] = (value, entry[1] if ttl is None else self.clock() + ttl)
        return entry[0]

    async def rotate(self, rotation: Rotation) -> bool:
        """One step of the event loop (no await between the checks and the writes): atomic."""
        family, spent = self._live(rotation.family), self._live(rotation.spent)
        if family is not None and family[0] == rotation.record:
            return True
        if family is None or family[0] != rotation.expected or spent is None or spent[0] == USED:
            return False
        expires = self.clock() + rotation.ttl
        self._values[rotation.spent] = (USED, spent[1])
        self._values[rotation.fresh] = (rotation.grant, expires)
        self._values[rotation.family] = (rotation.record, expires)
        self._wrote()
        return True

    async def revoke_jti(self, jti: str, expires: float) -> None:
        self._revoked[jti] = max(expires, self._revoked.get(jti, 0.0))
        self._wrote()

    async def revoked_jtis(self, now: float) -> dict[str, float]:
        return {jti: exp for jti, exp in self._revoked.items() if exp > now}

    async def ping(self) -> bool:
        return True
