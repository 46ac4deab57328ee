"""`ItemCache`: the items of batch answers, kept one by one, so a batch asks only for the rest.

A batch endpoint's answer (`/products?ids=1,2,3`) is cached whole by the response cache under
its URL; the next batch (`?ids=2,3,4`) has another URL. The dataloaders keep each item of a
batch answer here instead (`bff.graph.loader.BatchLoader`), for as long as the answers it came
from allow (the smallest gateway freshness of the batch's calls: `s-maxage`, else `max-age`,
else `cache.ttl`), per principal when any of them was `private`. A later batch takes the items
it finds and calls its upstream only for the missing keys.

Items are decoded records, so they stay in this process's memory (bounded, least recently
used first) whatever `cache.store` says; the response cache below shares whole answers
between replicas.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from bff.upstream.cache_control import Freshness

SHARED = ""


def principal_of(headers: Mapping[str, str]) -> str:
    """A digest of the identity headers sent: the scope of `private` items (anonymous: one)."""
    text = "\n".join(f"{k.lower()}:{v}" for k, v in sorted(headers.items()))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class ItemCache:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        # (loader, scope, key) -> (expires, value, private)
        self._items: OrderedDict[tuple[str, str, Hashable], tuple[float, Any, bool]] = OrderedDict()
        self._private = False  # whether any private item was kept: else one scope to look in

    def __len__(self) -> int:
        return len(self._items)

    def get_many(
        self, loader: str, keys: Sequence[Hashable], principal: str
    ) -> tuple[dict[Hashable, Any], Freshness | None]:
        """The fresh items of `keys` (the principal's own first), and the freshness the
        least fresh of them has left (what the header policy reads), `None` if none is kept."""
        now, items, found = self.clock(), self._items, {}
        scopes = (principal, SHARED) if self._private else (SHARED,)
        soonest, private = float("inf"), False
        for key in keys:
            for scope in scopes:
                entry_key = (loader, scope, key)
                entry = items.get(entry_key)
                if entry is None:
                    continue
                expires, value, is_private = entry
                if expires <= now:
                    del items[entry_key]
                    continue
                items.move_to_end(entry_key)
                found[key] = value
                soonest = min(soonest, expires)
                private = private or is_private
                break
        if not found:
            return found, None
        left = int(soonest - now)
        return found, Freshness(left, left, private)

    def put_many(
        self,
        loader: str,
        values: Iterable[tuple[Hashable, Any]],
        fresh: Freshness,
        principal: str,
    ) -> None:
        """Keep `values` (key, item) for `fresh.shared_max_age` seconds; `None` items and
        answers not to be stored are skipped."""
        lifetime = fresh.shared_max_age
        if lifetime is None or lifetime <= 0:
            return
        scope = principal if fresh.private else SHARED
        self._private = self._private or fresh.private
        expires, items = self.clock() + lifetime, self._items
        for key, value in values:
            if value is None or isinstance(value, BaseException):
                continue
            items[(loader, scope, key)] = (expires, value, fresh.private)
            items.move_to_end((loader, scope, key))
        while len(items) > self.max_entries:
            items.popitem(last=False)
