"""`ResponseCache`: upstream GET answers kept as long as their own `Cache-Control` allows.

It sits in `UpstreamPool.request`, above the shared calls and the balancer, so a hit costs no
connection, no span of an attempt, no instance. The rules (RFC 9111 for a shared cache):

- freshness is `s-maxage`, else `max-age`, else the upstream's `cache.ttl`; `no-store` and
  `no-cache` are never stored, nor an answer that carries `Set-Cookie` or `Vary: *`, so a
  cached answer never replays a cookie;
- `private` answers (and those that vary on request headers) are kept per principal: the key
  holds a digest of the identity header lines the gateway sent (anonymous callers send none,
  so they are one principal); other answers are shared by every caller;
- an answer with an `ETag` or `Last-Modified` is served stale past its freshness (for its
  `stale-while-revalidate`, else as long again) while one conditional request refreshes it in
  the background (304: the stored answer is fresh again);
- keys start with `redis.key_prefix`: two gateways with different prefixes never share.

Each lookup is counted by `on_result(upstream, result)`, result one of `hit`, `miss`,
`stale` and `bypass` (a call the cache may not answer: not a GET, or made by a mutation).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache

from bff.errors import BffError
from bff.upstream.cache_control import freshness, stale_window
from bff.upstream.cache_store import CachedAnswer, CacheStore, MemoryCacheStore
from bff.upstream.http11 import Headers
from bff.upstream.item_cache import ItemCache, SharedItems
from bff.upstream.request import Request
from bff.upstream.response import UpstreamResponse

HIT, MISS, STALE, BYPASS = "hit", "miss", "stale", "bypass"
# Statuses a cache may store when the answer gives a lifetime (RFC 9110 15.1).
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 404, 405, 410, 414, 501})
# Fields never stored: the connection's own, and those that change per answer.
_NOT_STORED = frozenset({b"connection", b"keep-alive", b"set-cookie", b"age", b"x-request-id"})

Fetch = Callable[[Request], Awaitable[UpstreamResponse]]


class ResponseCache:
    def __init__(
        self,
        store: CacheStore,
        *,
        prefix: str = "",
        max_entry_size: int = 1024 * 1024,
        max_items: int = 10000,
        on_result: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        shared_items: SharedItems | None = None,
    ) -> None:
        self.entries = store
        # a memory store serves the bytes it keeps: their decoded records can be kept too
        self._same_bodies = isinstance(store, MemoryCacheStore)
        self.prefix = f"{prefix}cache:"
        self.max_entry_size = max_entry_size
        self.on_result = on_result
        self.clock = clock
        # the dataloaders' per-item cache: in the store's Redis too, when it is shared
        self.items = ItemCache(max_items, clock, shared_items)
        self._revalidating: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def count(self, upstream: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(upstream, result)

    def keys(self, upstream: str, request: Request) -> tuple[str, str]:
        """The shared key of `request` and the key for its principal alone."""
        shared = f"{self.prefix}{upstream}:{request.method}:{request.target.decode('ascii')}"
        return shared, f"{shared}:p:{_principal(request.fields)}"

    async def lookup(
        self, upstream: str, request: Request
    ) -> tuple[CachedAnswer | None, str, tuple[str, str]]:
        """The stored answer for `request` (its principal's first) with `hit`, `stale` or
        `miss`; an answer past its stale window is a miss."""
        keys = self.keys(upstream, request)
        shared, own = await self.entries.get_many(keys)
        answer = own or shared
        if answer is None:
            return None, MISS, keys
        age = self.clock() - answer.stored
        if age < answer.fresh:
            return answer, HIT, keys
        if age < answer.fresh + answer.stale:
            return answer, STALE, keys
        return None, MISS, keys

    async def store(
        self, keys: tuple[str, str], response: UpstreamResponse, ttl: float | None
    ) -> None:
        """Keep `response` if its headers allow it, under the key its privacy asks for."""
        answer = self.storable(response, ttl)
        if answer is None:
            return
        private = "vary" in response.headers or freshness(response.headers, ttl).private
        await self.entries.put(keys[1] if private else keys[0], answer, answer.fresh + answer.stale)

    def storable(self, response: UpstreamResponse, ttl: float | None) -> CachedAnswer | None:
        headers = response.headers
        if response.status not in CACHEABLE_STATUSES or len(response.body) > self.max_entry_size:
            return None
        if "set-cookie" in headers or headers.get("vary", "").strip() == "*":
            return None
        fresh = freshness(headers, ttl)
        if fresh.shared_max_age is None or fresh.shared_max_age <= 0:
            return None
        kept = [(n, v) for n, v in headers.raw if n.lower() not in _NOT_STORED]
        lifetime = float(fresh.shared_max_age)
        return CachedAnswer(
            response.status,
            kept,
            bytes(response.body),
            self.clock(),
            lifetime,
            stale_window(headers, lifetime),
        )

    def served(self, answer: CachedAnswer, upstream: str) -> UpstreamResponse:
        """The stored answer as a response, with its `Age` (what the header policy reads)."""
        age = max(0, int(self.clock() - answer.stored))
        headers = Headers([*answer.headers, (b"age", str(age).encode())])
        return UpstreamResponse(answer.status, answer.body, headers, upstream, self._same_bodies)

    def revalidate(
        self,
        upstream: str,
        request: Request,
        answer: CachedAnswer,
        keys: tuple[str, str],
        fetch: Fetch,
        ttl: float | None,
    ) -> None:
        """Refresh a stale `answer` in the background, once per key at a time."""
        key = keys[0]
        if key in self._revalidating:
            return
        self._revalidating.add(key)
        task = asyncio.ensure_future(self._revalidate(request, answer, keys, fetch, ttl))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._settled(key, done))

    async def _revalidate(
        self,
        request: Request,
        answer: CachedAnswer,
        keys: tuple[str, str],
        fetch: Fetch,
        ttl: float | None,
    ) -> None:
        stored = Headers(answer.headers)
        conditional = request
        if "etag" in stored:
            conditional = conditional.with_header("If-None-Match", stored["etag"])
        if "last-modified" in stored:
            conditional = conditional.with_header("If-Modified-Since", stored["last-modified"])
        try:
            response = await fetch(conditional)
        except BffError:
            return  # the stale answer stays until its window ends
        if response.status == 304:
            response = _refreshed(answer, response)
        await self.store(keys, response, ttl)

    def _settled(self, key: str, task: asyncio.Task[None]) -> None:
        self._revalidating.discard(key)
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a bug would be logged by the loop's handler otherwise

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@lru_cache(maxsize=4096)
def _principal(fields: bytes) -> str:
    """A digest of the header lines sent (a request's batches send the same ones)."""
    return hashlib.blake2b(fields, digest_size=16).hexdigest()


def _refreshed(answer: CachedAnswer, not_modified: UpstreamResponse) -> UpstreamResponse:
    """The stored answer with the fields a 304 updates (RFC 9111 4.3.4)."""
    updated = {n.lower(): (n, v) for n, v in not_modified.headers.raw}
    names = {b"cache-control", b"etag", b"expires", b"last-modified", b"date", b"vary"}
    kept = [(n, v) for n, v in answer.headers if n.lower() not in updated or n.lower() not in names]
    kept += [pair for name, pair in updated.items() if name in names]
    return UpstreamResponse(answer.status, answer.body, Headers(kept), not_modified.upstream)
