"""The dataloader contract, in one base class.

A concrete loader says which upstream call fetches a batch (`fetch`) and how a record maps
back to its key (`key_of`); the base does the rest: one upstream call per batch with
duplicates removed (aiodataloader's cache dedupes repeated keys), results realigned to keys,
`None` for a key the upstream does not know, and the batch's error for every key when the
call fails, so each field fed by it becomes null with its own path. `load_settled` is the
form a field of many parents uses: one value or exception per key, where `load_many` would
fail every key for one key's error. The batch span and metric of the telemetry issue attach
here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader

from bff.errors import BffError
from upstream_clients import Clients

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


class BatchLoader(DataLoader[K, V | None], Generic[K, V, R]):
    """Loads `V` by key through one batch call returning records `R`."""

    upstream: str = ""

    def __init__(self, clients: Clients) -> None:
        super().__init__()
        self.clients = clients

    async def fetch(self, keys: list[K]) -> Iterable[R]:
        """One upstream call for all `keys`."""
        raise NotImplementedError

    def key_of(self, record: R) -> K:
        raise NotImplementedError

    def collect(self, keys: Sequence[K], records: Iterable[R]) -> list[V | None]:
        """Realign `records` to `keys`; by default one record per key, `None` when missing."""
        found = {self.key_of(r): r for r in records}
        return [found.get(k) for k in keys]  # type: ignore[misc]

    async def batch_load_fn(self, keys: list[K]) -> list[V | BffError | None]:  # type: ignore[override]
        try:
            records = await self.fetch(keys)
        except BffError as error:
            return [error] * len(keys)
        return list(self.collect(keys, records))

    async def load_settled(self, keys: Sequence[K]) -> list[V | Exception | None]:
        """One value or exception per key (duplicates kept, realigned), from one batch."""
        load = self.load
        futures = {key: load(key) for key in dict.fromkeys(keys)}
        for future in futures.values():
            # A batch settles all its keys at once: waiting for one key (not shared with other
            # waiters, so a cancelled wait cancels no load) waits for the whole batch.
            if not future.done():
                try:
                    await asyncio.wait((future,))
                except asyncio.CancelledError:  # the batch still settles: nobody will read it
                    for left in futures.values():
                        left.add_done_callback(_forget)
                    raise
        settled = {key: f.exception() or f.result() for key, f in futures.items()}
        return [settled[key] for key in keys]


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
