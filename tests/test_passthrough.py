"""REST passthrough over the sample services and a streaming upstream, through the gateway.

Paths that matter are sent verbatim over a raw connection (`http.client`), since HTTP client
libraries normalise `..` before sending.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import itertools
import socket
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from bff.app import create_app
from bff.passthrough.forwarding import body_framing
from bff.passthrough.routes import routes_from_settings
from bff.serving import BackgroundServer
from bff.upstream import Upstreams
from bff.upstream.paths import InvalidPath
from bff.upstream.request import InvalidRequest
from services import RunningServices
from tests.support import UpstreamCalls, gateway_settings, sign

BIG = 24 * 1024 * 1024
PIECE = bytes(range(256)) * 256  # 64 KiB


async def files(scope: Scope, receive: Receive, send: Send) -> None:
    """A streaming upstream: `/big` sends BIG bytes in pieces, `/upload` counts and hashes
    what it received, `/headers` echoes the request's fields."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(3)
    if path == "/big":
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-length", str(BIG).encode())]})
        for _ in range(BIG // len(PIECE)):
            await send({"type": "http.response.body", "body": PIECE, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/upload":
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            piece = message.get("body", b"")
            digest.update(piece)
            size += len(piece)
            if not message.get("more_body"):
                break
        content: Any = {"size": size, "sha256": digest.hexdigest()}
    else:
        content = {n.decode(): v.decode() for n, v in scope["headers"]}
        content["target"] = scope["raw_path"].decode() + "?" + scope["query_string"].decode()
    body = orjson.dumps(content)
    headers = [
        (b"content-type", b"application/json"),
        (b"connection", b"x-internal"),
        (b"x-internal", b"hop"),
        (b"x-end-to-end", b"kept"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class Gateway:
    def __init__(self, url: str, upstreams: Upstreams) -> None:
        self.url = url
        self.upstreams = upstreams
        self.netloc = urlsplit(url).netloc

    def raw(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request with its target sent exactly as written."""
        conn = http.client.HTTPConnection(self.netloc, timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            reply = conn.getresponse()
            headers: dict[str, str] = {}
            for name, value in reply.getheaders():  # repeated fields joined, as HTTP reads them
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            return reply.status, headers, reply.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def gateway(shop: RunningServices) -> Iterator[Gateway]:
    with BackgroundServer(files) as upstream:
        urls = {**shop.urls, "files": [upstream.url], "down": [closed_port_url()]}
        routes = [
            {"name": "catalog", "upstream": "catalog", "methods": ["GET"], "auth": "public"},
            {
                "name": "orders",
                "upstream": "orders",
                "methods": ["GET", "POST"],
                "auth": {"scopes": ["orders:read"]},
            },
            {"name": "files", "upstream": "files", "methods": ["GET", "POST"], "auth": "public"},
            {
                "name": "echo",
                "upstream": "files",
                "methods": ["GET"],
                "auth": "authenticated",
                "forward_authorization": True,
            },
            {"name": "down", "upstream": "down", "auth": "public"},
            {"name": "slow", "upstream": "files", "auth": "public", "timeout": "200ms"},
            {"name": "full", "upstream": "files", "auth": "public", "strip_prefix": False},
            {"name": "v2", "upstream": "files", "auth": "public", "rewrite": "/v2/files/"},
            {"name": "products", "upstream": "catalog", "auth": "public", "rewrite": "/products"},
        ]
        settings = gateway_settings(
            urls,
            {"timeout": {"total": "10s"}},
            routes=routes,
            server={"max_body": 64 * 1024 * 1024},
        )
        app = create_app(settings)
        with BackgroundServer(app) as server:
            yield Gateway(server.url, app.state.upstreams)


def test_a_get_passes_status_body_and_end_to_end_headers(gateway: Gateway) -> None:
    status, headers, body = gateway.raw("GET", "/api/catalog/products/1", {"X-Request-Id": "r-1"})
    assert (status, orjson.loads(body)["id"]) == (200, 1)
    assert headers["x-request-id"] == "r-1"  # once: the gateway's, not the upstream's echo too
    assert headers["content-type"] == "application/json"
    status, _, body = gateway.raw("GET", "/api/catalog/products/99999")
    assert status == 404 and b"not found" in body  # the upstream's own answer, as it is
    status, headers, _ = gateway.raw("GET", "/api/files/headers")
    assert headers["x-end-to-end"] == "kept" and "x-internal" not in headers


def test_head_answers_the_fields_without_a_body(gateway: Gateway) -> None:
    """A GET route passes HEAD too; the upstream's answer says what it makes of it (the
    sample services, on FastAPI, answer 405, which passes as it is)."""
    status, headers, body = gateway.raw("HEAD", "/api/files/big")
    assert (status, body, headers["content-length"]) == (200, b"", str(BIG))
    assert gateway.raw("HEAD", "/api/catalog/products/1")[0] == 405


def test_only_configured_instances_are_contacted(gateway: Gateway, calls: UpstreamCalls) -> None:
    """An absolute-form target naming another host still reaches the route's upstream."""
    port = int(gateway.netloc.split(":")[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET http://169.254.169.254/api/catalog/products/1 HTTP/1.1\r\n"
            b"Host: 169.254.169.254\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b'"id":1' in answer
    assert calls.by_service() == {"catalog": 1}


def test_unknown_routes_and_methods(gateway: Gateway) -> None:
    status, _, body = gateway.raw("GET", "/api/nope/x")
    assert (status, orjson.loads(body)["code"]) == (404, "NOT_FOUND")
    status, headers, _ = gateway.raw("DELETE", "/api/catalog/products/1")
    assert (status, headers["allow"]) == (405, "GET, HEAD")


def test_route_requirements(gateway: Gateway) -> None:
    status, headers, body = gateway.raw("GET", "/api/orders/orders")
    assert (status, orjson.loads(body)["code"]) == (401, "UNAUTHENTICATED")
    assert "www-authenticate" in headers
    weak = {"Authorization": f"Bearer {sign('1', [])}"}
    assert gateway.raw("GET", "/api/orders/orders", weak)[0] == 403
    strong = {"Authorization": f"Bearer {sign('1', ['orders:read'])}"}
    status, _, body = gateway.raw("GET", "/api/orders/orders?limit=2", strong)
    assert status == 200 and len(orjson.loads(body)["items"]) <= 2


@pytest.mark.parametrize(
    "target",
    [
        "/api/catalog/../orders/orders",
        "/api/catalog/%2e%2e/orders/orders",
        "/api/catalog/..%2Forders/orders",
        "/api/catalog/products%2F..%2F..%2Forders",
        "/api/catalog//orders",
        "/api/catalog/products\\..\\orders",
        "/api/catalog/products/1%00",
    ],
)
def test_paths_that_could_leave_the_route_are_refused(
    gateway: Gateway, calls: UpstreamCalls, target: str
) -> None:
    status = gateway.raw("GET", target)[0]
    assert status in (400, 404)  # 404 when the first segment names no route after all
    assert calls.by_service() == {}  # no service was reached


def seen_target(gateway: Gateway, target: str) -> str | None:
    """The path and query the `files` upstream received for `target`, None if refused (400)."""
    status, _, body = gateway.raw("GET", target)
    if status == 400:
        return None
    assert status == 200, (status, body)
    seen: str = orjson.loads(body)["target"]
    return seen


@pytest.mark.parametrize(
    ("target", "upstream"),
    [
        # strip_prefix (the default): /api/{name} is dropped
        ("/api/files/headers?a=1", "/headers?a=1"),
        ("/api/files/", "/?"),
        ("/api/files", "/?"),
        # strip_prefix: false: the path as the client addressed it, normalised
        ("/api/full/headers?a=1", "/api/full/headers?a=1"),
        ("/api/full/%7Eme/a%2cb/", "/api/full/~me/a%2Cb/?"),
        ("/api/full/", "/api/full/?"),
        ("/api/full", "/api/full?"),
        # rewrite: /v2/files/ (stored without its trailing slash) replaces /api/{name}
        ("/api/v2/products/1?a=1", "/v2/files/products/1?a=1"),
        ("/api/v2/%7Eme/a%2cb", "/v2/files/~me/a%2Cb?"),
        ("/api/v2/", "/v2/files/?"),
        ("/api/v2", "/v2/files?"),
    ],
)
def test_each_path_option_reaches_its_upstream_path(
    gateway: Gateway, target: str, upstream: str
) -> None:
    assert seen_target(gateway, target) == upstream


def test_a_rewrite_reaches_a_real_service(gateway: Gateway, calls: UpstreamCalls) -> None:
    """`/api/products` on `rewrite: /products` is the catalog's own `/products` (the bare
    route reaches the prefix without a slash, which FastAPI would otherwise redirect)."""
    status, _, body = gateway.raw("GET", "/api/products/2")
    assert (status, orjson.loads(body)["id"]) == (200, 2)
    status, _, body = gateway.raw("GET", "/api/products?limit=2&offset=1")
    assert status == 200 and [p["id"] for p in orjson.loads(body)["items"]] == [2, 3]
    assert calls.by_path("catalog") == {"GET /products/2": 1, "GET /products": 1}


@pytest.mark.parametrize(
    ("target", "upstream"),
    [
        ("/api/v2/../x", None),
        ("/api/v2/..", None),
        ("/api/v2/x/../../../etc/passwd", None),
        ("/api/v2/%2e%2e/x", None),
        ("/api/v2/%2E%2E", None),
        ("/api/v2/.%2e/x", None),
        ("/api/v2/./x", None),
        ("/api/v2/..%2Fx", None),
        ("/api/v2/x%2F..%2F..%2Fy", None),
        ("/api/v2/x%2fy", None),
        ("/api/v2//evil.example/x", None),
        ("/api/v2/x//y", None),
        ("/api/v2/x\\..\\y", None),
        ("/api/v2/x%5C..%5Cy", None),
        ("/api/v2/x%00", None),
        ("/api/full/../files/x", None),
        ("/api/full/%2e%2e/files/x", None),
        # not dot segments: they stay under the prefix
        ("/api/v2/.../x", "/v2/files/.../x?"),
        ("/api/v2/%2e%2e%2e/..x", "/v2/files/.../..x?"),
        ("/api/v2/x/.hidden", "/v2/files/x/.hidden?"),
    ],
)
def test_paths_never_leave_the_rewrite_prefix(
    gateway: Gateway, target: str, upstream: str | None
) -> None:
    assert seen_target(gateway, target) == upstream


@pytest.mark.parametrize(
    "target",
    [
        "/api/products/../../orders/orders",
        "/api/products/%2e%2e/%2e%2e/orders/orders",
        "/api/products/..%2F..%2Forders%2Forders",
        "/api/products//orders/orders",
        "/api/products/..\\..\\orders\\orders",
    ],
)
def test_a_rewrite_route_cannot_reach_another_service(
    gateway: Gateway, calls: UpstreamCalls, target: str
) -> None:
    assert gateway.raw("GET", target)[0] == 400
    assert calls.by_service() == {}


@pytest.mark.parametrize("route", ["files", "full", "v2"])
def test_the_query_string_passes_unchanged(gateway: Gateway, route: str) -> None:
    query = "p=../../admin&q=%2F..%2F&r=a%20b&s=%2e%2e&t=1;u=/x//y"
    seen = seen_target(gateway, f"/api/{route}/x?{query}")
    assert seen is not None and seen.endswith(f"/x?{query}")


def test_upstream_path_is_the_prefix_plus_a_normalised_tail() -> None:
    """The mapping itself, without the network: whatever the tail, the result is under the
    prefix and has no segment a parser could resolve, or the tail is refused."""
    settings = gateway_settings(
        {"u": ["http://127.0.0.1:1"]},
        routes=[
            {"name": "a", "upstream": "u"},
            {"name": "b", "upstream": "u", "strip_prefix": False},
            {"name": "c", "upstream": "u", "rewrite": "/v2/c/"},
            {"name": "d", "upstream": "u", "rewrite": "/"},
        ],
    )
    routes = routes_from_settings(settings, Upstreams.from_settings(settings))
    assert [routes[n].upstream_path("/x") for n in "abcd"] == ["/x", "/api/b/x", "/v2/c/x", "/x"]
    assert [routes[n].upstream_path("") for n in "abcd"] == ["/", "/api/b", "/v2/c", "/"]
    pieces = ["x", ".", "..", "%2e", "%2E%2e", "%2f", "%5c", "\\", "", "%00", "%7E", ".x"]
    tails = {"/" + "/".join(p) for p in itertools.product(pieces, repeat=3)}
    tails |= {"/" + "".join(p) for p in itertools.product(pieces, repeat=3)}
    for name, prefix in (("a", ""), ("b", "/api/b"), ("c", "/v2/c")):
        for tail in tails:
            try:
                path = routes[name].upstream_path(tail)
            except InvalidPath:
                continue
            assert path.startswith(prefix + "/"), (tail, path)
            segments = path.split("/")[1:]
            assert "" not in segments[:-1], (tail, path)  # no empty segment but a last slash
            for segment in segments:
                decoded = unquote(segment)
                assert decoded not in (".", "..") and "/" not in decoded, (tail, path)
                assert "\\" not in decoded, (tail, path)


def test_headers_are_cleaned_both_ways(gateway: Gateway) -> None:
    token = sign("7", ["orders:read"])
    sent = {
        "Authorization": f"Bearer {token}",
        "X-User-Id": "999",
        "Connection": "X-Secret",
        "X-Secret": "hop",
        "X-Forwarded-For": "6.6.6.6",
        "X-Custom": "passes",
    }
    status, _, body = gateway.raw("GET", "/api/files/headers?a=1&b=%20", sent)
    seen = orjson.loads(body)
    assert status == 200
    assert seen["x-user-id"] == "7" and seen["x-user-scopes"] == "orders:read"
    assert seen["x-custom"] == "passes" and seen["target"] == "/headers?a=1&b=%20"
    assert "authorization" not in seen and "x-secret" not in seen
    # The peer is not a trusted proxy: its claim is not extended. (uvicorn itself believes
    # X-Forwarded-For from 127.0.0.1 by default and reports 6.6.6.6 as the client.)
    assert seen["x-forwarded-for"] in ("127.0.0.1", "6.6.6.6")
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-host"] == gateway.netloc
    assert (
        seen["forwarded"] == f'for="{seen["x-forwarded-for"]}";proto=http;host="{gateway.netloc}"'
    )
    assert seen["x-request-id"]
    _, _, body = gateway.raw("GET", "/api/echo/headers", {"Authorization": f"Bearer {token}"})
    assert orjson.loads(body)["authorization"] == f"Bearer {token}"  # this route forwards it


def test_large_bodies_stream_both_ways(gateway: Gateway) -> None:
    """Memory is measured with tracemalloc over the whole process (gateway, upstream and
    client threads): far below the body's size, so nobody held it whole."""
    with httpx.Client(base_url=gateway.url, timeout=60, trust_env=False) as client:
        digest, size = hashlib.sha256(), 0
        tracemalloc.start()
        try:
            with client.stream("GET", "/api/files/big") as reply:
                assert reply.status_code == 200
                for piece in reply.iter_bytes():
                    digest.update(piece)
                    size += len(piece)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < BIG // 3
        assert size == BIG
        assert digest.hexdigest() == hashlib.sha256(PIECE * (BIG // len(PIECE))).hexdigest()

        def upload() -> Iterator[bytes]:
            for _ in range(BIG // len(PIECE)):
                yield PIECE

        reply = client.post("/api/files/upload", content=upload())  # chunked
        assert reply.json() == {"size": BIG, "sha256": digest.hexdigest()}
        sized = client.post("/api/files/upload", content=b"x" * 100_000)
        assert sized.json()["size"] == 100_000


def test_a_declared_body_over_the_limit_is_413_unread(gateway: Gateway) -> None:
    conn = http.client.HTTPConnection(gateway.netloc, timeout=30)
    try:
        conn.putrequest("POST", "/api/files/upload")
        conn.putheader("Content-Length", str(65 * 1024 * 1024))
        conn.endheaders()
        reply = conn.getresponse()
        assert reply.status == 413
    finally:
        conn.close()


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 4\r\nContent-Length: 5\r\n",
        b"Content-Length: 4, 5\r\n",
        b"Transfer-Encoding: gzip, chunked\r\nTransfer-Encoding: identity\r\n",
    ],
)
def test_request_smuggling_attempts_are_refused(
    gateway: Gateway, calls: UpstreamCalls, framing: bytes
) -> None:
    port = int(gateway.netloc.split(":")[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/orders/orders HTTP/1.1\r\nHost: x\r\n%b\r\n"
            b"0\r\n\r\nGET /api/catalog/products/1 HTTP/1.1\r\nHost: x\r\n\r\n" % framing
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"HTTP/1.1 200" not in answer
    assert calls.by_service() == {}


def test_an_unreachable_upstream_is_a_json_502(gateway: Gateway) -> None:
    status, headers, body = gateway.raw("GET", "/api/down/x")
    assert status == 502 and headers["content-type"] == "application/json"
    assert orjson.loads(body) == {
        "error": "Upstream unavailable",
        "code": "UPSTREAM_UNAVAILABLE",
        "upstream": "down",
    }


def test_a_route_timeout_is_a_json_504(gateway: Gateway) -> None:
    status, _, body = gateway.raw("GET", "/api/slow/slow")  # the upstream's own budget: 10 s
    assert (status, orjson.loads(body)["code"]) == (504, "UPSTREAM_TIMEOUT")


def test_a_client_that_hangs_up_does_not_leak_the_upstream_connection(gateway: Gateway) -> None:
    pool = gateway.upstreams["files"]
    connections = pool.transport.pool_of(pool.instances[0])
    with socket.create_connection(("127.0.0.1", int(gateway.netloc.split(":")[1]))) as sock:
        sock.sendall(b"GET /api/files/big HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    for _ in range(1000):
        if connections.open_connections == 0:
            break
        time.sleep(0.01)
    assert connections.open_connections == 0
    assert gateway.raw("GET", "/api/files/headers")[0] == 200  # and the route still serves


def test_body_framing_refuses_what_two_parsers_could_read_differently() -> None:
    assert body_framing([(b"content-length", b"12")]) == 12
    assert body_framing([(b"transfer-encoding", b"chunked")]) == -1
    assert body_framing([(b"accept", b"*/*")]) is None
    for fields in (
        [(b"content-length", b"4"), (b"transfer-encoding", b"chunked")],
        [(b"content-length", b"4"), (b"content-length", b"5")],
        [(b"content-length", b"4, 4")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"9" * 19)],
    ):
        with pytest.raises(InvalidRequest):
            body_framing(fields)
