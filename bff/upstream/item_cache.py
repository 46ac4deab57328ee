"""`ItemCache`: the items of batch answers, kept one by one, so a batch asks only for the rest.

A batch endpoint's answer (`/products?ids=1,2,3`) is cached whole by the response cache under
its URL; the next batch (`?ids=2,3,4`) has another URL. The dataloaders keep each item of a
batch answer here instead (`bff.graph.loader.BatchLoader`), for as long as the answers it came
from allow (the smallest gateway freshness of the batch's calls: `s-maxage`, else `max-age`,
else `cache.ttl`), per principal when any of them was `private`. A later batch takes the items
it finds and calls its upstream only for the missing keys.

Where items live follows `cache.store`. In memory they are the decoded records themselves
(bounded, least recently used first), so a hit decodes nothing. In Redis (`SharedItems`) each
item is one key, msgpack with an expiry, written with its loader's `ItemCodec`, so every
replica takes what any one fetched; a loader whose item type msgpack cannot decode (no
`ItemCodec`) keeps its items in this process's memory. Keys start with `redis.key_prefix`,
so two prefixes never share an item.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import msgspec

from bff.upstream.cache_control import Freshness

log = logging.getLogger("bff.cache")

SHARED = ""

# key -> stored bytes (None: absent); then (key, value, milliseconds to keep) written at once
GetMany = Callable[[Sequence[str]], Awaitable[Sequence[bytes | str | None]]]
PutMany = Callable[[Sequence[tuple[str, bytes, int]]], Awaitable[object]]


def principal_of(headers: Mapping[str, str]) -> str:
    """A digest of the identity headers sent: the scope of `private` items (anonymous: one).
    Remembered per set of headers: every batch of a request asks for the same one."""
    return _principal(tuple(sorted(headers.items())))


@lru_cache(maxsize=4096)
def _principal(headers: tuple[tuple[str, str], ...]) -> str:
    text = "\n".join(f"{k.lower()}:{v}" for k, v in headers)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class ItemCodec:
    """How one loader's items are stored outside the process: `(expires, private, item)` as
    msgpack, decoded straight into the item's type (a record, a tuple of records...)."""

    __slots__ = ("_decoder", "_encoder")

    def __init__(self, item_type: Any) -> None:
        """Raises `TypeError` when msgpack cannot decode `item_type`."""
        self._decoder = msgspec.msgpack.Decoder(tuple[float, bool, item_type])
        self._encoder = msgspec.msgpack.Encoder()

    def encode(self, expires: float, private: bool, item: Any) -> bytes:
        return self._encoder.encode((expires, private, item))

    def decode(self, data: bytes) -> tuple[float, bool, Any]:
        expires, private, item = self._decoder.decode(data)
        return float(expires), bool(private), item


_KEY_ENCODER = msgspec.json.Encoder()


def key_text(key: Hashable) -> str | None:
    """`key` as it is written in a Redis key (`7`, `"a"`, `[1,5,0]`); `None` if it has no
    JSON form (such an item is not shared)."""
    try:
        return _KEY_ENCODER.encode(key).decode()
    except (TypeError, ValueError):
        return None


class SharedItems:
    """Items in Redis, one key each (`get_many`: MGET split by slot, `put_many`: a pipeline
    of SET with PX), under `prefix`. A Redis that does not answer is a miss, never a failure."""

    def __init__(self, get_many: GetMany, put_many: PutMany, prefix: str = "") -> None:
        self._get_many = get_many
        self._put_many = put_many
        self.prefix = f"{prefix}items:"

    def key(self, loader: str, scope: str, key: str) -> str:
        return f"{self.prefix}{loader}:{scope or '*'}:{key}"

    async def get_many(
        self, loader: str, keys: Sequence[Hashable], principal: str, codec: ItemCodec, now: float
    ) -> tuple[dict[Hashable, Any], float, bool]:
        """The unexpired items of `keys` (the principal's own first), the soonest expiry among
        them and whether any is private."""
        wanted: list[tuple[Hashable, str]] = []
        names: list[str] = []
        for key in keys:
            text = key_text(key)
            if text is not None:
                wanted.append((key, text))
                names += (self.key(loader, principal, text), self.key(loader, SHARED, text))
        found: dict[Hashable, Any] = {}
        soonest, private = float("inf"), False
        if not names:
            return found, soonest, private
        try:
            values = await self._get_many(names)
        except Exception as error:  # a cache that does not answer is a miss
            log.warning("item cache: Redis read failed (%s)", type(error).__name__)
            return found, soonest, private
        for index, (key, _) in enumerate(wanted):
            for value in (values[2 * index], values[2 * index + 1]):
                entry = _decoded(codec, value)
                if entry is None or entry[0] <= now:
                    continue
                found[key] = entry[2]
                soonest = min(soonest, entry[0])
                private = private or entry[1]
                break
        return found, soonest, private

    async def put_many(
        self,
        loader: str,
        values: Sequence[tuple[Hashable, Any]],
        expires: float,
        lifetime: float,
        scope: str,
        private: bool,
        codec: ItemCodec,
    ) -> None:
        keep = max(1, int(lifetime * 1000))
        entries: list[tuple[str, bytes, int]] = []
        for key, value in values:
            text = key_text(key)
            if text is None:
                continue
            try:
                entries.append(
                    (self.key(loader, scope, text), codec.encode(expires, private, value), keep)
                )
            except (TypeError, ValueError):
                continue  # an item msgpack cannot write: not shared
        if not entries:
            return
        try:
            await self._put_many(entries)
        except Exception as error:
            log.warning("item cache: Redis write failed (%s)", type(error).__name__)


@lru_cache(maxsize=2048)
def _left(seconds: int, private: bool) -> Freshness:
    """The freshness an item has left (one per second and privacy: batches share them)."""
    return Freshness(seconds, seconds, private)


_Entry = tuple[float, Any, bool, int]  # expires, value, private, stamp of its last use
_EXPIRES, _VALUE, _STAMP = itemgetter(0), itemgetter(1), itemgetter(3)


def _decoded(codec: ItemCodec, value: bytes | str | None) -> tuple[float, bool, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a client that decodes answers
        value = value.encode("latin-1")
    try:
        return codec.decode(value)
    except (msgspec.DecodeError, ValueError):
        return None  # another version's entry: a miss, overwritten soon


class ItemCache:
    """Items by loader and scope (`SHARED`, or a principal's), at most `max_entries` of them,
    the least recently used dropped first.

    A warm batch finds all its keys in one scope; it reads them in C (a Dashboard's four
    batches hold some 150 items) and moves none in the order of use unless one of them was
    last used more than `max_entries / 2` uses ago (its `stamp`): an item used since then
    cannot be the next to go. Recency is that exact only to half the bound; the bound is
    exact."""

    def __init__(
        self,
        max_entries: int,
        clock: Callable[[], float] = time.time,
        shared: SharedItems | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock  # wall-clock time: replicas compare the expiries they share
        self.shared = shared
        # (loader, scope) -> key -> (expires, value, private, stamp of its last use)
        self._groups: dict[tuple[str, str], dict[Hashable, _Entry]] = {}
        self._order: OrderedDict[tuple[str, str, Hashable], None] = OrderedDict()  # LRU first
        self._stamp = 0  # uses so far
        self._private = False  # whether any private item was kept: else one scope to look in

    def __len__(self) -> int:
        return len(self._order)

    def per_principal(self, codec: ItemCodec | None) -> bool:
        """Whether a lookup reads a principal's own items: in Redis, or once one is private
        here (until then every lookup reads the shared ones only)."""
        return self._private or (self.shared is not None and codec is not None)

    async def get_many(
        self,
        loader: str,
        keys: Sequence[Hashable],
        principal: str,
        codec: ItemCodec | None = None,
    ) -> tuple[dict[Hashable, Any], Freshness | None]:
        """The fresh items of `keys` by key (the principal's own first), and the freshness
        the least fresh of them has left, `None` if none is kept (`lookup`, as a mapping)."""
        values, _, fresh = await self.lookup(loader, keys, principal, codec)
        found = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
        return found, fresh

    async def lookup(
        self,
        loader: str,
        keys: Sequence[Hashable],
        principal: str,
        codec: ItemCodec | None = None,
    ) -> tuple[list[Any], int, Freshness | None]:
        """The fresh item of each of `keys`, `None` where none is kept (items are never
        `None`), how many were found, and the freshness the least fresh of them has left
        (what the header policy reads), `None` if none is kept. With a shared store and a
        `codec`, they are read from the store."""
        now = self.clock()
        if self.shared is not None and codec is not None:
            found, soonest, private = await self.shared.get_many(
                loader, keys, principal, codec, now
            )
            values, count = list(map(found.get, keys)), len(found)
        else:
            values, count, soonest, private = self._local(loader, keys, principal, now)
        if not count:
            return values, 0, None
        return values, count, _left(int(soonest - now), private)

    def _local(
        self, loader: str, keys: Sequence[Hashable], principal: str, now: float
    ) -> tuple[list[Any], int, float, bool]:
        groups = self._groups
        group = groups.get((loader, SHARED))
        own = groups.get((loader, principal)) if self._private else None
        if group is not None and keys and (own is None or not any(map(own.__contains__, keys))):
            entries: list[Any] = list(map(group.get, keys))
            if None not in entries:
                soonest = min(map(_EXPIRES, entries))
                if soonest > now:
                    if min(map(_STAMP, entries)) <= self._stamp - self.max_entries // 2:
                        self._use(loader, SHARED, group, keys)
                    return list(map(_VALUE, entries)), len(entries), soonest, False
        values: list[Any] = []
        count, soonest, private = 0, float("inf"), False
        scopes = (principal, SHARED) if self._private else (SHARED,)
        for key in keys:
            value = None
            for scope in scopes:
                found = groups.get((loader, scope))
                if found is None:
                    continue
                entry = found.get(key)
                if entry is None:
                    continue
                if entry[0] <= now:
                    self._drop(loader, scope, key)
                    continue
                self._use(loader, scope, found, (key,))
                value = entry[1]
                count += 1
                soonest = min(soonest, entry[0])
                private = private or entry[2]
                break
            values.append(value)
        return values, count, soonest, private

    def _use(
        self, loader: str, scope: str, group: dict[Hashable, _Entry], keys: Iterable[Hashable]
    ) -> None:
        """`keys` (all in `group`) were used now: last in the order of use."""
        order = self._order
        for key in keys:
            self._stamp += 1
            expires, value, private, _ = group[key]
            group[key] = (expires, value, private, self._stamp)
            order.move_to_end((loader, scope, key))

    def _drop(self, loader: str, scope: str, key: Hashable) -> None:
        group = self._groups[(loader, scope)]
        del group[key]
        if not group:
            del self._groups[(loader, scope)]
        self._order.pop((loader, scope, key), None)

    async def put_many(
        self,
        loader: str,
        values: Iterable[tuple[Hashable, Any]],
        fresh: Freshness,
        principal: str,
        codec: ItemCodec | None = None,
    ) -> None:
        """Keep `values` (key, item) for `fresh.shared_max_age` seconds; `None` items and
        answers not to be stored are skipped."""
        lifetime = fresh.shared_max_age
        if lifetime is None or lifetime <= 0:
            return
        scope = principal if fresh.private else SHARED
        expires = self.clock() + lifetime
        kept = [(k, v) for k, v in values if v is not None and not isinstance(v, BaseException)]
        if self.shared is not None and codec is not None:
            await self.shared.put_many(loader, kept, expires, lifetime, scope, fresh.private, codec)
            return
        if not kept:
            return
        self._private = self._private or fresh.private
        group = self._groups.setdefault((loader, scope), {})
        order = self._order
        for key, value in kept:
            self._stamp += 1
            group[key] = (expires, value, fresh.private, self._stamp)
            order[(loader, scope, key)] = None
            order.move_to_end((loader, scope, key))
        while len(order) > self.max_entries:
            self._drop(*order.popitem(last=False)[0])
