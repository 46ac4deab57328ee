"""The *floor*: what answering the benchmark's queries costs with no gateway at all.

A bare ASGI app under uvicorn (the same server, event loop and HTTP parser the gateway runs on:
uvloop and httptools when installed), with no framework, no GraphQL, no validation and no
auth, that makes exactly the upstream calls the gateway makes, level by level:

- `POST /dashboard?first=N`: the orders list; then the users batch and the catalog batch in
  parallel; then the inventory batch and the reviews batch in parallel (3 levels, 5 calls);
  answers the same JSON as the gateway's `data` for the Dashboard query;
- `POST /product?id=N`: one catalog batch call (`/products?ids=N`), as the gateway makes for
  `{ product(id: "N") { name } }`.

The request body is read and ignored. Whatever the gateway does beyond this is its overhead,
so the gateway/floor ratios measure the gateway and nothing else.

Upstream client (`--client`):

- `raw` (default): a minimal HTTP/1.1 keep-alive client on asyncio protocols and httptools'
  response parser, one list of idle connections per service. Its per-request cost does not
  grow with the number of connections, which is what a floor must be: the fastest client we
  can write, so the floor is not slowed by the client library.
- `httpx`: one `httpx.AsyncClient` per service, for comparison (httpx's pool does work that
  grows with the pool on every request).

Run: `python -m bench.floor --upstream orders=http://127.0.0.1:9121 --upstream ...` (all of
orders, users, catalog, inventory, reviews); prints `floor http://127.0.0.1:PORT` once bound;
`GET /health` answers 200 once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, urlsplit

import httptools
import httpx
import orjson
import uvicorn

UPSTREAMS = ("orders", "users", "catalog", "inventory", "reviews")
UPSTREAM_TIMEOUT = 5.0  # seconds per upstream call
DEFAULT_FIRST = 20

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class UpstreamError(Exception):
    """An upstream call failed; the floor answers 502 (the load generator counts it)."""


class Upstream(Protocol):
    async def get(self, path_and_query: str) -> Any: ...

    async def aclose(self) -> None: ...


# --- raw HTTP/1.1 client -------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.chunks: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed by the upstream"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        body = b"".join(self.chunks)
        self.chunks = []
        if not self.parser.should_keep_alive():
            self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


class RawUpstream:
    """GET-only HTTP/1.1 client of one service instance, reusing idle connections (LIFO)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream URL must be http://host:port, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._idle: list[_Connection] = []

    async def get(self, path_and_query: str) -> Any:
        request = b"".join(
            (
                f"GET {path_and_query} HTTP/1.1\r\n".encode(),
                self._host_header,
                b"Accept: application/json\r\n\r\n",
            )
        )
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except ConnectionError:
                pass  # closed by the server while idle: retry once on a fresh connection
        return await self._exchange(await self._connect(), request)

    async def _exchange(self, conn: _Connection, request: bytes) -> Any:
        try:
            async with asyncio.timeout(UPSTREAM_TIMEOUT):
                status, body = await conn.send(request)
        except BaseException:
            conn.close()
            raise
        if not conn.closed:
            self._idle.append(conn)
        if status != 200:
            raise UpstreamError(f"{self.host}:{self.port} answered {status}")
        return orjson.loads(body)

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(UPSTREAM_TIMEOUT):
            transport, conn = await loop.create_connection(_Connection, self.host, self.port)
        conn.transport = transport  # uvloop calls connection_made only after returning
        return conn

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


# --- httpx client ----------------------------------------------------------------------------


class HttpxUpstream:
    """The same calls through `httpx.AsyncClient`, to compare clients under one floor."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            timeout=UPSTREAM_TIMEOUT,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            trust_env=False,
        )

    async def get(self, path_and_query: str) -> Any:
        try:
            response = await self.client.get(path_and_query)
        except httpx.HTTPError as exc:
            raise UpstreamError(str(exc)) from exc
        if response.status_code != 200:
            raise UpstreamError(f"{response.url} answered {response.status_code}")
        return orjson.loads(response.content)

    async def aclose(self) -> None:
        await self.client.aclose()


CLIENTS: dict[str, Callable[[str], Upstream]] = {"raw": RawUpstream, "httpx": HttpxUpstream}


# --- the two answers -----------------------------------------------------------------------


def _ids(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in dict.fromkeys(values))


async def _nothing() -> dict[str, list[Any]]:
    return {"items": []}


class Floor:
    """The answers, computed from the upstreams exactly as the gateway's resolvers do."""

    def __init__(self, upstreams: dict[str, Upstream]) -> None:
        self.orders = upstreams["orders"]
        self.users = upstreams["users"]
        self.catalog = upstreams["catalog"]
        self.inventory = upstreams["inventory"]
        self.reviews = upstreams["reviews"]

    async def dashboard(self, first: int) -> dict[str, Any]:
        # level 1: the orders page
        page = await self.orders.get(f"/orders?limit={first}&offset=0")
        orders = page["items"]
        user_ids = _ids(o["userId"] for o in orders)
        product_ids = _ids(line["productId"] for o in orders for line in o["items"])
        # level 2: who ordered, and what
        users, products = await asyncio.gather(
            self.users.get(f"/users?ids={user_ids}") if user_ids else _nothing(),
            self.catalog.get(f"/products?ids={product_ids}") if product_ids else _nothing(),
        )
        found = _ids(p["id"] for p in products["items"])
        # level 3: stock and reviews of the products that exist
        stock, reviews = await asyncio.gather(
            self.inventory.get(f"/stock?productIds={found}") if found else _nothing(),
            self.reviews.get(f"/reviews?productIds={found}") if found else _nothing(),
        )
        user_by_id = {u["id"]: u for u in users["items"]}
        available = {s["productId"]: s["available"] for s in stock["items"]}
        ratings: dict[int, list[int]] = {}
        for review in reviews["items"]:
            ratings.setdefault(review["productId"], []).append(review["rating"])
        product_by_id: dict[int, dict[str, Any]] = {}
        for p in products["items"]:
            scores = ratings.get(p["id"])
            product_by_id[p["id"]] = {
                "id": str(p["id"]),
                "name": p["name"],
                "price": p["price"],
                "stock": available.get(p["id"]),
                "averageRating": round(sum(scores) / len(scores), 2) if scores else None,
            }
        nodes = []
        for o in orders:
            user = user_by_id.get(o["userId"])
            nodes.append(
                {
                    "id": str(o["id"]),
                    "status": o["status"],
                    "total": round(sum(i["quantity"] * i["unitPrice"] for i in o["items"]), 2),
                    "user": None if user is None else {"id": str(user["id"]), "name": user["name"]},
                    "items": [
                        {"quantity": i["quantity"], "product": product_by_id.get(i["productId"])}
                        for i in o["items"]
                    ],
                }
            )
        return {"data": {"orders": {"nodes": nodes}}}

    async def product(self, product_id: int) -> dict[str, Any]:
        found = (await self.catalog.get(f"/products?ids={product_id}"))["items"]
        return {"data": {"product": {"name": found[0]["name"]} if found else None}}


# --- the ASGI app ----------------------------------------------------------------------------


def _param(scope: Scope, name: str, default: int) -> int:
    values = parse_qs(scope["query_string"].decode("latin-1")).get(name)
    return int(values[0]) if values else default


class FloorApp:
    """Raw ASGI: no framework between uvicorn and the upstream calls."""

    def __init__(self, upstreams: dict[str, Upstream]) -> None:
        self.upstreams = upstreams
        self.floor = Floor(upstreams)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        more = True
        while more:  # read (and ignore) the request body, as any server must
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
        status, payload = await self._answer(scope)
        body = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope) -> tuple[int, Any]:
        path = scope["path"]
        try:
            if path == "/dashboard":
                return 200, await self.floor.dashboard(_param(scope, "first", DEFAULT_FIRST))
            if path == "/product":
                return 200, await self.floor.product(_param(scope, "id", 1))
            if path == "/health":
                return 200, {"status": "ok"}
        except (UpstreamError, ConnectionError, TimeoutError) as exc:
            return 502, {"error": f"{type(exc).__name__}: {exc}"}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": "not found"}

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for upstream in self.upstreams.values():
                    await upstream.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _upstream_arg(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or name not in UPSTREAMS:
        raise argparse.ArgumentTypeError(f"use NAME=URL with NAME one of {', '.join(UPSTREAMS)}")
    return name, url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor",
        description="The benchmark's floor: the gateway's upstream calls with no gateway.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw", help="(raw)")
    parser.add_argument(
        "--upstream", type=_upstream_arg, action="append", default=[], metavar="NAME=URL"
    )
    args = parser.parse_args(argv)
    urls = dict(args.upstream)
    missing = [name for name in UPSTREAMS if name not in urls]
    if missing:
        parser.error(f"missing --upstream for {', '.join(missing)}")
    upstreams = {name: CLIENTS[args.client](url) for name, url in urls.items()}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(
        FloorApp(upstreams),
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        ws="none",
    )
    print(f"floor http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
