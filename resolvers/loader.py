"""The dataloader contract, in one base class.

A concrete loader says which upstream call fetches a batch (`fetch`) and how a record maps
back to its key (`key_of`); the base does the rest: one upstream call per batch with
duplicates removed (aiodataloader's cache dedupes repeated keys), results realigned to keys,
`None` for a key the upstream does not know, and the batch's error for every key when the
call fails, so each field fed by it becomes null with its own path. The batch span and
metric of the telemetry issue attach here.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

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
