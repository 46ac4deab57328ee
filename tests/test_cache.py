"""The response cache: upstream GET answers kept by their own `Cache-Control`.

Pool tests run a loopback server whose answer headers each test chooses, and count what
reached it (with the `If-None-Match` it was sent); the clock is the test's. The last tests
run the gateway over the sample services with caching headers on, in memory and in Redis.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import orjson
import pytest
import redis
import redis.asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bff.app import create_app
from bff.config import ConfigError, settings_from_dict
from bff.graph import BatchLoader, Clients, ServiceClient, id_list
from bff.serving import BackgroundServer
from bff.telemetry.hub import Telemetry
from bff.upstream import Instance, UpstreamPool
from bff.upstream.cache_store import CachedAnswer, MemoryCacheStore, RedisCacheStore
from bff.upstream.header_policy import used_answers
from bff.upstream.response_cache import ResponseCache
from services import SERVICE_NAMES, RunningServices, ServiceOptions, ServiceSpec
from tests.auth_support import REDIS_URL
from tests.support import (
    DASHBOARD,
    SHOP_SCHEMA,
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    running_shop,
    sign,
)

WAIT = 5.0


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def sync() -> None:
        asyncio.run(asyncio.wait_for(test(), WAIT * 2))

    return sync


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Answering:
    """A server answering every request with `headers` (and 304 to a matching ETag)."""

    headers: list[str] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                seen = {n.lower(): v for n, _, v in (x.partition(": ") for x in lines[1:]) if n}
                seen["line"] = lines[0]
                self.requests.append(seen)
                extra = "".join(f"{h}\r\n" for h in self.headers)
                etag = next((h.split(": ")[1] for h in self.headers if h.startswith("ETag")), None)
                if etag is not None and seen.get("if-none-match") == etag:
                    writer.write(f"HTTP/1.1 304 Not Modified\r\n{extra}\r\n".encode())
                else:
                    body = b'{"n":%d}' % len(self.requests)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                        % (len(body), extra.encode(), body)
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def cached_pool(
    *headers: str,
    clock: Clock | None = None,
    cache: ResponseCache | None = None,
    ttl: float | None = None,
) -> AsyncIterator[tuple[Answering, UpstreamPool, list[str]]]:
    server_state = Answering(list(headers))
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    results: list[str] = []
    clock = clock or Clock()
    if cache is None:
        cache = ResponseCache(MemoryCacheStore(100, clock), clock=clock)
    cache.on_result = lambda upstream, result: results.append(result)
    pool = UpstreamPool(
        "catalog", [Instance(f"http://127.0.0.1:{port}")], cache=cache, cache_ttl=ttl
    )
    try:
        yield server_state, pool, results
    finally:
        await pool.aclose()
        server.close()


async def bodies(pool: UpstreamPool, n: int = 2, **kw: Any) -> list[Any]:
    return [(await pool.request("GET", "/products", **kw)).json() for _ in range(n)]


@run
async def test_a_fresh_answer_is_served_from_the_cache() -> None:
    async with cached_pool("Cache-Control: max-age=60") as (server, pool, results):
        assert await bodies(pool, 3) == [{"n": 1}] * 3
    assert len(server.requests) == 1
    assert results == ["miss", "hit", "hit"]


@run
async def test_no_store_no_cache_set_cookie_and_no_lifetime_are_never_kept() -> None:
    for headers in (
        ("Cache-Control: no-store, max-age=60",),
        ("Cache-Control: no-cache",),
        ("Cache-Control: max-age=60", "Set-Cookie: a=1"),
        ("Cache-Control: max-age=0",),
        ("Cache-Control: public",),
        (),
    ):
        async with cached_pool(*headers) as (_server, pool, results):
            assert await bodies(pool) == [{"n": 1}, {"n": 2}], headers
        assert results == ["miss", "miss"], headers


@run
async def test_s_maxage_wins_for_the_gateway_and_ttl_stands_for_no_header() -> None:
    async with cached_pool("Cache-Control: max-age=0, s-maxage=60") as (server, pool, _):
        assert await bodies(pool) == [{"n": 1}] * 2
    async with cached_pool(ttl=30) as (server, pool, _):
        assert await bodies(pool) == [{"n": 1}] * 2
    assert len(server.requests) == 1


@run
async def test_an_answer_expires_with_its_lifetime() -> None:
    clock = Clock()
    async with cached_pool("Cache-Control: max-age=10", clock=clock) as (_server, pool, results):
        await bodies(pool, 1)
        clock.now += 9
        await bodies(pool, 1)
        clock.now += 2
        await bodies(pool, 1)
    assert results == ["miss", "hit", "miss"]  # no validator: no stale serving


@run
async def test_private_answers_are_kept_per_principal() -> None:
    async with cached_pool("Cache-Control: private, max-age=60") as (server, pool, results):
        one = {"X-User-Id": "1"}
        await bodies(pool, 2, headers=one)
        await bodies(pool, 1, headers={"X-User-Id": "2"})
        await bodies(pool, 2)  # anonymous callers are one principal
    assert results == ["miss", "hit", "miss", "miss", "hit"]
    assert len(server.requests) == 3


@run
async def test_a_stale_answer_is_served_while_it_is_revalidated() -> None:
    clock = Clock()
    headers = ("Cache-Control: max-age=10", 'ETag: "v1"')
    async with cached_pool(*headers, clock=clock) as (server, pool, results):
        first = await bodies(pool, 1)
        clock.now += 15
        stale = await bodies(pool, 1)  # served at once, a conditional request behind it
        for _ in range(100):
            if len(server.requests) == 2 and not pool.cache._revalidating:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.01)
        fresh_again = await bodies(pool, 1)
    assert first == stale == fresh_again == [{"n": 1}]
    assert results == ["miss", "stale", "hit"]
    assert server.requests[1]["if-none-match"] == '"v1"'  # 304: kept, fresh again


@run
async def test_a_hit_tells_the_header_policy_its_remaining_age() -> None:
    clock = Clock()
    async with cached_pool("Cache-Control: max-age=60", clock=clock) as (_, pool, _results):
        await bodies(pool, 1)
        clock.now += 20
        with used_answers() as used:
            await bodies(pool, 1)
    assert used.cache_control() == "max-age=40"


@run
async def test_a_mutations_calls_bypass_the_cache() -> None:
    async with cached_pool("Cache-Control: max-age=60") as (server, pool, results):
        with used_answers(mutation=True):
            await bodies(pool, 2)
        await pool.request("POST", "/orders", json={})
    assert results == ["bypass"] * 3
    assert len(server.requests) == 3


@run
async def test_key_prefixes_never_share_entries() -> None:
    store = MemoryCacheStore(100)
    first = ResponseCache(store, prefix="a:")
    async with cached_pool("Cache-Control: max-age=60", cache=first) as (_, pool, _results):
        await bodies(pool, 1)
    other = ResponseCache(store, prefix="b:")
    async with cached_pool("Cache-Control: max-age=60", cache=other) as (server, pool, results):
        await bodies(pool, 1)
    assert results == ["miss"]
    assert len(server.requests) == 1


def redis_cache(prefix: str) -> tuple[ResponseCache, redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    store = RedisCacheStore(
        lambda keys: client.mget(keys), lambda key, value, ms: client.set(key, value, px=ms)
    )
    return ResponseCache(store, prefix=prefix), client


@run
async def test_replicas_share_one_redis_cache_within_their_prefix() -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    first, client_a = redis_cache(prefix)
    async with cached_pool("Cache-Control: max-age=60", cache=first) as (_, pool, results_a):
        await bodies(pool, 1)
    replica, client_b = redis_cache(prefix)
    async with cached_pool("Cache-Control: max-age=60", cache=replica) as (server, pool, results_b):
        assert await bodies(pool, 1) == [{"n": 1}]  # the first replica's answer
    elsewhere, client_c = redis_cache(f"other-{prefix}")
    async with cached_pool("Cache-Control: max-age=60", cache=elsewhere) as (_, pool, results_c):
        await bodies(pool, 1)
    for client in (client_a, client_b, client_c):
        await client.aclose()
    assert (results_a, results_b, results_c) == (["miss"], ["hit"], ["miss"])
    assert server.requests == []


@run
async def test_an_unreachable_redis_is_a_miss_not_a_failure() -> None:
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    store = RedisCacheStore(
        lambda keys: client.mget(keys), lambda key, value, ms: client.set(key, value, px=ms)
    )
    cache = ResponseCache(store)
    async with cached_pool("Cache-Control: max-age=60", cache=cache) as (_server, pool, results):
        assert await bodies(pool, 2) == [{"n": 1}, {"n": 2}]
    await client.aclose()
    assert results == ["miss", "miss"]


@run
async def test_the_memory_store_is_bounded_least_recently_used_first() -> None:
    store = MemoryCacheStore(2)
    entry = CachedAnswer(200, [], b"", 0.0, 60.0, 0.0)
    for key in ("a", "b"):
        await store.put(key, entry, 60)
    await store.get_many(["a"])  # a is used: b goes first
    await store.put("c", entry, 60)
    assert len(store) == 2
    assert [e is not None for e in await store.get_many(["a", "b", "c"])] == [True, False, True]


def test_a_redis_store_needs_a_redis_url() -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_dict({"cache": {"enabled": True, "store": "redis"}})
    assert "cache.store" in str(error.value)


# --- through the gateway ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cacheable_shop() -> Iterator[RunningServices]:
    options = ServiceOptions(cache_control="max-age=60", etag=True)
    with running_shop(*(ServiceSpec(name, options=options) for name in SERVICE_NAMES)) as shop:
        yield shop


def metric(url: str, line_start: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=WAIT).text
    values = [float(x.split()[-1]) for x in text.splitlines() if x.startswith(line_start)]
    return sum(values)


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_warm_cache_answers_the_dashboard_without_upstream_calls(
    cacheable_shop: RunningServices, store: str
) -> None:
    extra: dict[str, Any] = {"cache": {"enabled": True, "store": store}}
    if store == "redis":
        extra["redis"] = {"url": REDIS_URL, "key_prefix": f"test-{uuid.uuid4().hex}:"}
    settings = gateway_settings(cacheable_shop.urls, **extra)
    calls = UpstreamCalls(cacheable_shop)
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        calls.reset()
        cold = client.post(DASHBOARD, {"first": 5}, token=sign())
        made = calls.total()
        warm = client.post(DASHBOARD, {"first": 5}, token=sign())
        hits = metric(url, 'bff_cache_requests_total{result="hit",upstream="users"}')
        client.close()
    assert calls.total() == made == 5  # the warm Dashboard asked nobody
    calls.close()
    assert warm.json() == cold.json() and "errors" not in warm.json()
    assert warm.headers["cache-control"].startswith("max-age=")
    assert hits == 1


def test_a_hit_is_an_event_on_the_batch_span(cacheable_shop: RunningServices) -> None:
    exporter = InMemorySpanExporter()
    settings = gateway_settings(cacheable_shop.urls, cache={"enabled": True})
    telemetry = Telemetry(settings, SHOP_SCHEMA, exporter=exporter)
    query = "{ product(id: 4) { id name reviews { id } } }"
    with BackgroundServer(create_app(settings, telemetry=telemetry)) as server:
        client = GraphQLClient(server.url)
        client.data(query)
        client.data(query)
        scrape = httpx.get(f"{server.url}/metrics", timeout=WAIT).text
        client.close()
        assert telemetry.tracing is not None and telemetry.tracing.flush()
    batches = [s for s in exporter.get_finished_spans() if s.name == "dataloader reviews"]
    events = [[e.name for e in span.events] for span in batches]
    assert events == [["cache miss"], ["cache hit"]]
    assert 'bff_cache_requests_total{result="hit",upstream="reviews"} 1.0' in scrape


# --- the per-item cache of batch endpoints ----------------------------------------------------


class Item(msgspec.Struct, frozen=True):
    id: int


class ItemLoader(BatchLoader[int, Item, Item]):
    upstream = "catalog"

    async def fetch(self, keys: list[int]) -> Iterable[Item]:
        client = ServiceClient(self.clients.pools["catalog"], self.clients.headers)
        return await client.get_decoded(ITEMS, "/items", {"ids": id_list(keys)})

    def key_of(self, record: Item) -> int:
        return record.id


ITEMS = msgspec.json.Decoder(list[Item])


@dataclass
class BatchServer:
    """`GET /items?ids=1,2` answers `[{"id":1},{"id":2}]` with `headers`; it keeps targets."""

    headers: list[str]
    targets: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                target = head.decode("latin-1").split(" ")[1]
                self.targets.append(target)
                ids = target.partition("ids=")[2].split(",")
                body = orjson.dumps([{"id": int(i)} for i in ids if i])
                extra = "".join(f"{h}\r\n" for h in self.headers).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def item_loaders(*headers: str) -> AsyncIterator[tuple[BatchServer, Callable[..., Any]]]:
    state = BatchServer(list(headers))
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = ResponseCache(MemoryCacheStore(100))
    pool = UpstreamPool("catalog", [Instance(f"http://127.0.0.1:{port}")], cache=cache)

    def loader_for(user: str | None = None) -> ItemLoader:
        identity = {"X-User-Id": user} if user else {}
        return ItemLoader(Clients({"catalog": pool}, identity))  # one per request, as served

    try:
        yield state, loader_for
    finally:
        await pool.aclose()
        server.close()


@run
async def test_a_batch_asks_only_for_the_items_not_kept() -> None:
    async with item_loaders("Cache-Control: max-age=60") as (server, loader_for):
        first = await loader_for().load_many([1, 2, 3])
        with used_answers() as used:
            second = await loader_for().load_many([2, 3, 4])
        third = await loader_for().load_many([4, 1])
    assert first == [Item(1), Item(2), Item(3)]
    assert second == [Item(2), Item(3), Item(4)]
    assert third == [Item(4), Item(1)]
    assert server.targets == ["/items?ids=1,2,3", "/items?ids=4"]  # the third asked nobody
    # the kept items' freshness left (whole seconds, rounded down) and the new answer's
    assert used.cache_control() in ("max-age=59", "max-age=60")


@run
async def test_private_items_are_kept_per_principal_and_no_store_never() -> None:
    async with item_loaders("Cache-Control: private, max-age=60") as (server, loader_for):
        await loader_for("1").load_many([1, 2])
        await loader_for("1").load_many([1, 2])
        await loader_for("2").load_many([1, 2])
    assert server.targets == ["/items?ids=1,2", "/items?ids=1,2"]
    async with item_loaders("Cache-Control: no-store") as (server, loader_for):
        await loader_for().load_many([1, 2])
        await loader_for().load_many([2])
    assert server.targets == ["/items?ids=1,2", "/items?ids=2"]


@run
async def test_a_mutations_loaders_never_read_kept_items() -> None:
    async with item_loaders("Cache-Control: max-age=60") as (server, loader_for):
        await loader_for().load_many([1])
        with used_answers(mutation=True):
            await loader_for().load_many([1])
    assert server.targets == ["/items?ids=1", "/items?ids=1"]


def products_query(*ids: int) -> str:
    """Root product fields: one batch (`/products?ids=...`) of `ids` through the loader."""
    return "{ " + " ".join(f"p{i}: product(id: {i}) {{ id name }}" for i in ids) + " }"


def test_replicas_share_batch_items_through_redis(cacheable_shop: RunningServices) -> None:
    prefix = f"test-{uuid.uuid4().hex}:"

    def settings(key_prefix: str) -> Any:
        return gateway_settings(
            cacheable_shop.urls,
            cache={"enabled": True, "store": "redis"},
            redis={"url": REDIS_URL, "key_prefix": key_prefix},
        )

    calls = UpstreamCalls(cacheable_shop)
    with (
        running_gateway(settings(prefix)) as a,
        running_gateway(settings(prefix)) as b,
        running_gateway(settings(f"other-{prefix}")) as elsewhere,
    ):
        clients = [GraphQLClient(url) for url in (a, b, elsewhere)]
        first, replica, other = clients
        calls.reset()
        assert first.data(products_query(1, 2, 3))["p2"]["id"] == "2"
        made = calls.by_path("catalog")["GET /products"]
        # another URL (no whole answer to reuse), every item fetched by the first replica
        assert replica.data(products_query(3, 2))["p3"]["id"] == "3"
        shared = calls.by_path("catalog")["GET /products"]
        replica.data(products_query(2, 4))  # only 4 is asked for
        partly = calls.by_path("catalog")["GET /products"]
        other.data(products_query(3, 2))  # another prefix shares nothing
        apart = calls.by_path("catalog")["GET /products"]
        for client in clients:
            client.close()
    calls.close()
    assert (made, shared, partly, apart) == (1, 1, 2, 3)
    keys = redis.Redis.from_url(REDIS_URL)
    try:
        items = {k.decode() for k in keys.scan_iter(match=f"{prefix}items:*", count=500)}
    finally:
        keys.close()
    assert {k.rsplit(":", 1)[1] for k in items if "ProductLoader" in k} == {"1", "2", "3", "4"}


@run
async def test_the_memory_item_cache_is_bounded_least_recently_used_first() -> None:
    from bff.upstream.cache_control import Freshness
    from bff.upstream.item_cache import ItemCache

    items = ItemCache(2)
    fresh = Freshness(60, 60, False)
    await items.put_many("l", [(1, "a"), (2, "b")], fresh, "p")
    await items.get_many("l", [1], "p")  # 1 is used: 2 goes first
    await items.put_many("l", [(3, "c")], fresh, "p")
    found, _ = await items.get_many("l", [1, 2, 3], "p")
    assert (len(items), found) == (2, {1: "a", 3: "c"})


@run
async def test_a_batch_takes_its_principals_items_first_and_never_an_expired_one() -> None:
    from bff.upstream.cache_control import Freshness
    from bff.upstream.item_cache import ItemCache

    clock = Clock()
    items = ItemCache(10, clock)
    await items.put_many("l", [(1, "a"), (2, "b")], Freshness(60, 60, False), "p")
    await items.put_many("l", [(2, "own b")], Freshness(30, 30, True), "p")
    await items.put_many("l", [(3, "c")], Freshness(5, 5, False), "p")
    mine = await items.lookup("l", [1, 2], "p")
    theirs = await items.lookup("l", [1, 2], "q")
    clock.now += 10  # 3 has expired, 1 and 2 have not
    later = await items.lookup("l", [1, 2, 3], "q")
    assert mine == (["a", "own b"], 2, Freshness(30, 30, True))
    assert theirs == (["a", "b"], 2, Freshness(60, 60, False))
    assert later == (["a", "b", None], 2, Freshness(50, 50, False))
    assert len(items) == 3  # the expired item is dropped


@run
async def test_a_warm_batch_moves_its_items_up_before_they_could_be_dropped() -> None:
    from bff.upstream.cache_control import Freshness
    from bff.upstream.item_cache import ItemCache

    items = ItemCache(4, Clock())
    fresh = Freshness(60, 60, False)
    await items.put_many("l", [(1, "a"), (2, "b")], fresh, "p")
    await items.put_many("l", [(3, "c")], fresh, "p")
    used = await items.lookup("l", [1, 2], "p")  # used two puts after it was kept
    await items.put_many("l", [(4, "d"), (5, "e")], fresh, "p")  # one over the bound
    later = await items.lookup("l", [1, 2, 3, 4, 5], "p")
    assert used == (["a", "b"], 2, fresh)
    assert (len(items), later[:2]) == (4, (["a", "b", None, "d", "e"], 4))
