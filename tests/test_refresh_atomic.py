"""A refresh's rotation is one step of the store (issue 21): a store that fails between a
refresh's check and its rotation, or in the middle of it, never leaves a spent token without
its successor, so a store blip does not log anyone out.

The contract first, on every backend (memory, the real Redis, the real memcached, a real Redis
Cluster: the three keys of a rotation share the family's hash tag): a rotation applies wholly
or not at all, a retried one is still applied, and of concurrent ones exactly one is. Then the
store really going away at the worst moments: a Redis killed (and restarted from its append
log) between the check and the rotation, a Redis whose writes are paused so that the rotation
script never runs, and a memcached cut off between the steps of its rotation."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis

from bff.auth.refresh import (
    USED,
    AccessRef,
    Grant,
    RefreshTokens,
    Revoked,
    family_key,
    grant_key,
    new_family,
)
from bff.auth.store import Rotation, TokenStore, TokenStoreUnavailable
from bff.auth.store_memcached import MemcachedTokenStore
from bff.auth.store_memory import MemoryTokenStore
from bff.auth.store_redis import RedisTokenStore
from bff.config import Settings
from bff.shared_state import SharedState
from tests.auth_support import MEMCACHED_SERVER, REDIS_URL, redis_prefix
from tests.tcp_proxy import TcpProxy
from tests.test_redis_cluster import answers, cluster_url, free_port, wait_until

__all__ = ["cluster_url", "redis_prefix"]

Scenario = Callable[[TokenStore], Awaitable[None]]


def run(shared: SharedState | None, kind: str, scenario: Scenario) -> None:
    """`scenario` against a fresh store of `kind` (Redis ones over `shared`'s client)."""

    async def main() -> None:
        store: TokenStore = MemoryTokenStore()
        if shared is not None and shared.redis is not None:
            store = RedisTokenStore(shared.redis, shared.namespace("auth"))
        elif kind == "memcached":
            store = MemcachedTokenStore([MEMCACHED_SERVER], f"bfftest:{new_family()}:auth:")
        try:
            await scenario(store)
        finally:
            await store.aclose()
            if shared is not None:
                await shared.aclose()

    asyncio.run(main())


def shared_state(kind: str, request: pytest.FixtureRequest, prefix: str) -> SharedState | None:
    if kind == "redis":
        return SharedState.at(REDIS_URL, prefix)
    if kind == "cluster":
        url = request.getfixturevalue("cluster_url")
        redis_section = {"url": url, "cluster": True, "key_prefix": prefix}
        return SharedState.from_settings(Settings.model_validate({"redis": redis_section}))
    return None


BACKENDS = pytest.mark.parametrize("kind", ["memory", "redis", "memcached", "cluster"])


def rotation(family: str, fresh: str, expected: str = "record-old") -> Rotation:
    return Rotation(
        spent=grant_key(family, "old"),
        fresh=grant_key(family, fresh),
        grant="grant-" + fresh,
        family=family_key(family),
        expected=expected,
        record="record-" + fresh,
        ttl=60,
    )


async def snapshot(store: TokenStore, family: str, *fresh: str) -> list[str | None]:
    keys = [grant_key(family, "old"), family_key(family), *(grant_key(family, f) for f in fresh)]
    return [await store.get(key) for key in keys]


# --- the contract -----------------------------------------------------------------------------


@BACKENDS
def test_a_rotation_applies_wholly_or_not_at_all(
    kind: str, request: pytest.FixtureRequest, redis_prefix: str
) -> None:
    async def scenario(store: TokenStore) -> None:
        family = new_family()
        await store.put(grant_key(family, "old"), "grant-old", 60)
        await store.put(family_key(family), "record-old", 60)
        before = await snapshot(store, family, "new")
        assert before == ["grant-old", "record-old", None]
        # the family changed since the check (revoked, or another rotation): nothing written
        assert not await store.rotate(rotation(family, "new", expected="record-other"))
        assert await snapshot(store, family, "new") == before
        # the presented token spent meanwhile, or gone: nothing written
        await store.put(grant_key(family, "old"), USED, 60)
        assert not await store.rotate(rotation(family, "new"))
        assert await snapshot(store, family, "new") == [USED, "record-old", None]
        await store.delete(grant_key(family, "old"))
        assert not await store.rotate(rotation(family, "new"))
        assert await snapshot(store, family, "new") == [None, "record-old", None]
        # all of it
        await store.put(grant_key(family, "old"), "grant-old", 60)
        assert await store.rotate(rotation(family, "new"))
        after = await snapshot(store, family, "new")
        assert after == [USED, "record-new", "grant-new"]
        # a retry of the same rotation (its first reply lost) is applied, and changes nothing
        assert await store.rotate(rotation(family, "new"))
        assert await snapshot(store, family, "new") == after
        # another rotation of the spent token: refused, its grant never written
        assert not await store.rotate(rotation(family, "other"))
        assert await snapshot(store, family, "new", "other") == [*after, None]

    run(shared_state(kind, request, redis_prefix), kind, scenario)


@BACKENDS
def test_of_concurrent_rotations_of_one_token_exactly_one_is_applied(
    kind: str, request: pytest.FixtureRequest, redis_prefix: str
) -> None:
    async def scenario(store: TokenStore) -> None:
        for _ in range(3):
            family = new_family()
            await store.put(grant_key(family, "old"), "grant-old", 60)
            await store.put(family_key(family), "record-old", 60)
            fresh = [f"new{n}" for n in range(8)]
            done = await asyncio.gather(*(store.rotate(rotation(family, f)) for f in fresh))
            assert sum(done) == 1, done
            won = fresh[done.index(True)]
            grants = [await store.get(grant_key(family, f)) for f in fresh]
            assert grants == [("grant-" + f if f == won else None) for f in fresh]
            assert await store.get(family_key(family)) == "record-" + won

    run(shared_state(kind, request, redis_prefix), kind, scenario)


@BACKENDS
def test_refresh_tokens_rotate_and_detect_reuse_on_every_backend(
    kind: str, request: pytest.FixtureRequest, redis_prefix: str
) -> None:
    async def scenario(store: TokenStore) -> None:
        tokens = RefreshTokens(store, ttl=60)
        first = await tokens.issue(grant_of(), access("a1"))
        read = await tokens.check(first)
        assert isinstance(read, Grant)
        assert await tokens.check(first) == read  # checking spends nothing
        second = await tokens.rotate(read, access("a2"))
        assert isinstance(second, str)
        assert isinstance(await tokens.check(second), Grant)
        again = await tokens.check(first)  # reuse: the family goes, with what it issued
        assert isinstance(again, Revoked)
        assert [a.jti for a in again.access] == ["a1", "a2"]
        assert await tokens.check(second) is None

    run(shared_state(kind, request, redis_prefix), kind, scenario)


def grant_of() -> Grant:
    return Grant("2", ("orders:read",), (), new_family())


def access(jti: str) -> AccessRef:
    return AccessRef("opaque", jti, time.time() + 60)


# --- a Redis going away -----------------------------------------------------------------------


class OwnRedis:
    """A redis-server of this module's own on a free port, that a test may kill, restart
    (from its append-only file, fsynced on every write) and pause: the shared one is not
    ours to stop."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.work)),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: answers(self.port), f"redis-server on {self.port} answers")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def admin(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("own-redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_a_redis_killed_between_the_check_and_the_rotation_leaves_the_token_usable(
    own_redis: OwnRedis,
) -> None:
    async def scenario(store: TokenStore) -> None:
        tokens = RefreshTokens(store, ttl=60)
        first = await tokens.issue(grant_of(), access("a1"))
        read = await tokens.check(first)
        assert isinstance(read, Grant)
        own_redis.kill()
        with pytest.raises(TokenStoreUnavailable):  # the gateway's 503
            await tokens.rotate(read, access("a2"))
        own_redis.start()  # with everything it had written
        again = await tokens.check(first)
        assert again == read  # not spent: the client's retry refreshes
        second = await tokens.rotate(again, access("a2"))
        assert isinstance(second, str)
        assert isinstance(await tokens.check(second), Grant)
        assert isinstance(await tokens.check(first), Revoked)  # and reuse is still reuse

    run(SharedState.at(own_redis.url, "bfftest:"), "redis", scenario)


def test_a_rotation_cut_off_by_a_paused_redis_is_all_or_nothing(own_redis: OwnRedis) -> None:
    """Writes paused (`CLIENT PAUSE ... WRITE`: reads answer, the script waits) until the
    rotation has timed out (the gateway's 503) and closed its connections. Whether Redis then
    drops the waiting script or still runs it is Redis's affair; either way, no part of a
    rotation is ever seen without the rest."""

    async def scenario(store: TokenStore) -> None:
        tokens = RefreshTokens(store, ttl=60)
        first = await tokens.issue(grant_of(), access("a1"))
        read = await tokens.check(first)
        assert isinstance(read, Grant) and read.presented is not None
        admin = own_redis.admin()
        pattern = f"bfftest:auth:*{{{read.family}}}*"
        try:
            before = {k.decode(): admin.get(k) for k in admin.scan_iter(pattern)}
            admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
            try:
                with pytest.raises(TokenStoreUnavailable):
                    await tokens.rotate(read, access("a2"))
            finally:
                admin.execute_command("CLIENT", "UNPAUSE")
            assert admin.ping()  # anything still queued has run by now
            after = {k.decode(): admin.get(k) for k in admin.scan_iter(pattern)}
        finally:
            admin.close()
        spent = "bfftest:auth:" + grant_key(read.family, read.presented)
        family = "bfftest:auth:" + family_key(read.family)
        assert set(before) == {spent, family}
        if after == before:  # none of it: the token refreshes on the client's retry
            again = await tokens.check(first)
            assert again == read
            assert isinstance(await tokens.rotate(again, access("a2")), str)
            return
        # all of it: spent, a fresh grant, and the family naming it and the new access token
        assert after[spent] == USED.encode()
        (fresh,) = set(after) - set(before)
        record = orjson.loads(after[family] or b"{}")
        assert fresh == "bfftest:auth:" + grant_key(read.family, record["rt"])
        assert orjson.loads(after[fresh] or b"{}")["sub"] == "2"
        assert [a[1] for a in record["at"]] == ["a1", "a2"]


# --- a memcached going away between the steps of a rotation -----------------------------------


class CutMemcachedStore(MemcachedTokenStore):
    """A memcached store behind a real TCP proxy, which it cuts right after one step of a
    rotation (`cut_after`: "put" of the fresh grant, or "cas" of the family record): the
    server is really unreachable for the steps that follow."""

    def __init__(self, proxy: TcpProxy) -> None:
        super().__init__([f"127.0.0.1:{proxy.port}"], f"bfftest:{new_family()}:auth:")
        self.proxy = proxy
        self.cut_after: str | None = None

    def _cut(self, step: str) -> None:
        if self.cut_after == step:
            self.cut_after = None
            self.proxy.stop()

    async def put(self, key: str, value: str, ttl: float) -> None:
        await super().put(key, value, ttl)
        self._cut("put")

    async def _cas(self, name: bytes, data: bytes, token: int, expires: float) -> bool:
        done = await super()._cas(name, data, token, expires)
        self._cut("cas")
        return done


@pytest.fixture
def memcached_proxy() -> Iterator[TcpProxy]:
    host, _, port = MEMCACHED_SERVER.rpartition(":")
    with TcpProxy((host, int(port))) as proxy:
        yield proxy


async def back(store: TokenStore, proxy: TcpProxy) -> None:
    """Restore the cut proxy and wait until the store answers through it again."""
    proxy.start()
    deadline = time.monotonic() + 10
    while not await store.ping():
        assert time.monotonic() < deadline, "memcached answers again through the proxy"
        await asyncio.sleep(0.05)


def test_memcached_cut_before_the_family_record_leaves_the_token_usable(
    memcached_proxy: TcpProxy,
) -> None:
    async def main() -> None:
        store = CutMemcachedStore(memcached_proxy)
        tokens = RefreshTokens(store, ttl=60)
        try:
            first = await tokens.issue(grant_of(), access("a1"))
            read = await tokens.check(first)
            assert isinstance(read, Grant)
            store.cut_after = "put"  # the fresh grant is written, then memcached is away
            with pytest.raises(TokenStoreUnavailable):
                await tokens.rotate(read, access("a2"))
            await back(store, memcached_proxy)
            again = await tokens.check(first)
            assert again == read  # not spent: the client's retry refreshes
            second = await tokens.rotate(again, access("a2"))
            assert isinstance(second, str)
            assert isinstance(await tokens.check(first), Revoked)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_memcached_cut_after_the_family_record_has_rotated_and_reuse_is_still_seen(
    memcached_proxy: TcpProxy,
) -> None:
    """Cut after the commit (the family record names the new token) and before the presented
    token is marked used: the refresh succeeds, and the old token presented again is a reuse
    all the same, read from the family record."""

    async def main() -> None:
        store = CutMemcachedStore(memcached_proxy)
        tokens = RefreshTokens(store, ttl=60)
        try:
            first = await tokens.issue(grant_of(), access("a1"))
            read = await tokens.check(first)
            assert isinstance(read, Grant)
            store.cut_after = "cas"
            second = await tokens.rotate(read, access("a2"))
            assert isinstance(second, str)
            await back(store, memcached_proxy)
            assert await store.get(grant_key(read.family, read.presented or "")) != USED
            assert isinstance(await tokens.check(second), Grant)  # the new token works
            reused = await tokens.check(first)
            assert isinstance(reused, Revoked)
            assert [a.jti for a in reused.access] == ["a1", "a2"]
            assert await tokens.check(second) is None  # its family is gone
        finally:
            await store.aclose()

    asyncio.run(main())
