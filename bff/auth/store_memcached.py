"""The `memcached` token store (`auth.store: memcached`): tokens shared by every replica that
uses the same memcached servers (`memcached.servers`, keys spread over them by hash).

memcached has values, TTLs and compare-and-swap, and nothing else, so:

- every value carries its own expiry (`<epoch seconds> <value>`): memcached cannot tell how
  long a key has left, and `swap` must keep it;
- `swap` is `gets` then `cas` with the token it read, again on a conflict: of two replicas
  rotating one refresh token at once, exactly one writes over the value it read, and the
  other then reads (and replaces) what the first wrote. That is the single use, and the reuse
  detection, that `bff.auth.refresh` builds on;
- a refresh's `rotate` cannot be one step (memcached has no operation over several keys), so
  it goes in the one safe order: the new grant first (nobody can use it until the family
  names it), then the family record by `cas` (the commit, which exactly one of two concurrent
  rotations wins), then the presented grant marked used. A server gone before the commit
  leaves the presented token as it was; after it, the family names the new token and the
  presented one reads as rotated away (reused), whether the last step happened or not;
- the revoked ids are one JSON object `{id: expiry}` under one key, changed by the same
  `gets`/`cas` loop, expired entries dropped on each change; it expires with its last entry.

Rate limits, APQ and metering are not here: they need Redis's scripts and counters, and stay
on Redis or in memory. The client (emcache) connects on first use, in the serving loop. A
server that does not answer within `TIMEOUT` is `TokenStoreUnavailable`, like Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import emcache
import orjson

from bff.auth.store import USED, Rotation, TokenStore, TokenStoreUnavailable

T = TypeVar("T")

TIMEOUT = 0.5  # seconds for each command
CONNECT_TIMEOUT = 0.5
MAX_CONNECTIONS = 32  # per server
CAS_ATTEMPTS = 16  # a swap that loses this many races in a row gives up (503)
RELATIVE_LIMIT = 30 * 24 * 3600  # memcached reads a larger exptime as an epoch time


class MemcachedTokenStore(TokenStore):
    kind = "memcached"

    def __init__(
        self, servers: Sequence[str], prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.addresses = [_address(server) for server in servers]
        self.prefix = prefix
        self.clock = clock
        self._revoked_key = self._key("revoked-jti")
        self._client: emcache.Client | None = None
        self._connecting: asyncio.Lock | None = None

    def _key(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    async def client(self) -> emcache.Client:
        if self._client is None:
            if self._connecting is None:
                self._connecting = asyncio.Lock()
            async with self._connecting:
                if self._client is None:
                    self._client = await emcache.create_client(
                        self.addresses,
                        timeout=TIMEOUT,
                        connection_timeout=CONNECT_TIMEOUT,
                        max_connections=MAX_CONNECTIONS,
                    )
        return self._client

    async def _call(
        self, command: Callable[[emcache.Client], Awaitable[T]], *expected: type[Exception]
    ) -> T:
        """`command`'s result; the `expected` errors as they are, every other one (no server,
        a timeout, an error reply) as `TokenStoreUnavailable`."""
        try:
            return await command(await self.client())
        except expected:
            raise
        except (emcache.CommandError, emcache.ClusterNoAvailableNodes, OSError) as exc:
            raise TokenStoreUnavailable() from exc

    def _exptime(self, expires: float) -> int:
        """memcached's exptime for an epoch `expires`: seconds from now (at least 1, since 0
        means never), or the epoch itself past memcached's 30-day limit for relative times."""
        left = math.ceil(expires - self.clock())
        return max(1, left) if left <= RELATIVE_LIMIT else math.ceil(expires)

    async def get(self, key: str) -> str | None:
        item = await self._call(lambda c: c.get(self._key(key)))
        if item is None:
            return None
        expires, value = _unpack(item.value)
        return value if expires > self.clock() else None

    async def put(self, key: str, value: str, ttl: float) -> None:
        expires = self.clock() + ttl
        data = _pack(expires, value)
        await self._call(lambda c: c.set(self._key(key), data, exptime=self._exptime(expires)))

    async def delete(self, *keys: str) -> None:
        for key in keys:
            await self._delete(self._key(key))

    async def _delete(self, name: bytes) -> None:
        with contextlib.suppress(emcache.NotFoundCommandError):  # missing is fine
            await self._call(lambda c: c.delete(name), emcache.NotFoundCommandError)

    async def swap(self, key: str, value: str, ttl: float | None = None) -> str | None:
        name = self._key(key)
        for _ in range(CAS_ATTEMPTS):
            item = await self._call(lambda c: c.gets(name))
            if item is None or item.cas is None:
                return None
            expires, old = _unpack(item.value)
            if expires <= self.clock():
                return None
            if ttl is not None:
                expires = self.clock() + ttl
            if await self._cas(name, _pack(expires, value), item.cas, expires):
                return old
        raise TokenStoreUnavailable()  # lost every race: refuse rather than guess

    async def _cas(self, name: bytes, data: bytes, token: int, expires: float) -> bool:
        """Write `data` if `name` is unchanged since `token`; False when another writer won
        (or the key went away meanwhile: the next `gets` tells which)."""
        exptime = self._exptime(expires)
        try:
            await self._call(
                lambda c: c.cas(name, data, token, exptime=exptime), emcache.StorageCommandError
            )
        except emcache.StorageCommandError:
            return False  # EXISTS (another writer) or NOT_FOUND
        return True

    async def rotate(self, rotation: Rotation) -> bool:
        """As `TokenStore.rotate`, in the order the module describes."""
        r = rotation
        name = self._key(r.family)
        item = await self._call(lambda c: c.gets(name))
        family = None
        if item is not None and item.cas is not None:
            expires, family = _unpack(item.value)
            family = family if expires > self.clock() else None
        if family is not None and family == r.record:
            return True  # applied already (a retried call)
        spent = await self.get(r.spent)
        if item is None or item.cas is None or family != r.expected or spent in (None, USED):
            return False
        await self.put(r.fresh, r.grant, r.ttl)
        expires = self.clock() + r.ttl
        if not await self._cas(name, _pack(expires, r.record), item.cas, expires):
            with contextlib.suppress(TokenStoreUnavailable):  # unreachable; it expires anyway
                await self.delete(r.fresh)
            return False  # another rotation, or the family's revocation, came first
        with contextlib.suppress(TokenStoreUnavailable):  # committed: the family says the rest
            await self.swap(r.spent, USED)
        return True

    async def revoke_jti(self, jti: str, expires: float) -> None:
        name = self._revoked_key
        for _ in range(CAS_ATTEMPTS):
            item = await self._call(lambda c: c.gets(name))
            now = self.clock()
            current = _revoked(item.value if item is not None else None, now)
            current[jti] = max(expires, current.get(jti, 0.0))
            data = orjson.dumps(current)
            last = max(current.values())
            if item is None or item.cas is None:
                if await self._add(name, data, last):
                    return
            elif await self._cas(name, data, item.cas, last):
                return
        raise TokenStoreUnavailable()

    async def _add(self, name: bytes, data: bytes, expires: float) -> bool:
        exptime = self._exptime(expires)
        try:
            await self._call(
                lambda c: c.add(name, data, exptime=exptime), emcache.NotStoredStorageCommandError
            )
        except emcache.NotStoredStorageCommandError:
            return False  # another replica created it first: read it and merge
        return True

    async def revoked_jtis(self, now: float) -> dict[str, float]:
        item = await self._call(lambda c: c.get(self._revoked_key))
        return _revoked(item.value if item is not None else None, now)

    async def ping(self) -> bool:
        try:
            await self._call(lambda c: c.get(self._key("ping")))
        except TokenStoreUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _address(server: str) -> emcache.MemcachedHostAddress:
    host, _, port = server.rpartition(":")
    return emcache.MemcachedHostAddress(host.strip("[]"), int(port))


def _pack(expires: float, value: str) -> bytes:
    return f"{expires:.3f} {value}".encode()


def _unpack(data: bytes) -> tuple[float, str]:
    expires, _, value = data.decode().partition(" ")
    return float(expires), value


def _revoked(data: bytes | None, now: float) -> dict[str, float]:
    """The revoked ids in `data` that have not expired at `now`."""
    if not data:
        return {}
    entries = orjson.loads(data)
    return {str(k): float(v) for k, v in entries.items() if float(v) > now}
