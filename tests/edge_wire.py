"""What the edge tests share: a recording upstream behind every pool, and raw-socket helpers.

HTTP client libraries refuse to send what these tests must send (a 40 KiB field, 500 fields,
half a head), so requests are written byte for byte on plain sockets, each read bounded by a
timeout so that no test can hang.
"""

from __future__ import annotations

import asyncio
import socket
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import Receive, Scope, Send

from bff.app import create_app
from bff.config import Settings
from bff.serving import BackgroundServer, EdgeLimits
from tests.support import gateway_settings
from upstream_clients import ShopClients

WAIT = 5.0  # seconds any read may take before a test fails rather than hangs
SLOW = 0.6  # seconds the recorder takes to answer `/slow`

# What the recorder's answers carry besides their body (the passthrough must filter them).
UPSTREAM_FIELDS = [
    (b"content-type", b"application/json"),
    (b"server", b"Werkzeug/3.0 Python/3.12"),
    (b"x-powered-by", b"Express"),
    (b"via", b"1.1 internal-proxy"),
    (b"set-cookie", b"session=upstream; Path=/"),
    (b"set-cookie", b"theme=dark; Path=/"),
    (b"date", b"Mon, 01 Jan 2001 00:00:00 GMT"),
    (b"keep-alive", b"timeout=5"),
    (b"x-end-to-end", b"kept"),
]


class Recorder:
    """An upstream that answers every request and keeps what reached it (health probes
    aside): the method, the raw target and the fields. `/slow` answers after SLOW seconds."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/slow":
            await asyncio.sleep(SLOW)
        if scope["path"] != "/health":
            self.seen.append(
                {
                    "method": scope["method"],
                    "target": scope["raw_path"].decode(),
                    "headers": [(n.decode(), v.decode()) for n, v in scope["headers"]],
                }
            )
        body = orjson.dumps({"ok": True})
        fields = [*UPSTREAM_FIELDS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        await send({"type": "http.response.body", "body": body})


def edge_settings(
    upstream_url: str, routes: Sequence[Mapping[str, Any]] = (), **server: Any
) -> Settings:
    """A gateway whose every upstream is `upstream_url`, with `server` settings and routes
    (default: `rec`, public GET and POST, and `cookies`, which passes Set-Cookie)."""
    urls = {name: [upstream_url] for name in (*ShopClients.upstreams(), "auth")}
    urls["rec"] = [upstream_url]
    chosen = list(routes) or [
        {"name": "rec", "upstream": "rec", "methods": ["GET", "POST"], "auth": "public"},
        {
            "name": "cookies",
            "upstream": "rec",
            "auth": "public",
            "response_headers": ["Set-Cookie"],
        },
    ]
    return gateway_settings(urls, routes=chosen, server=server)


@contextmanager
def edge_gateway(**server: Any) -> Iterator[tuple[str, Recorder]]:
    """A gateway with `server` settings in front of a fresh recorder; yields its URL."""
    recorder = Recorder()
    # Roomier than the gateway's: what the gateway forwards (its own fields added) must arrive.
    roomy = EdgeLimits(max_header_size=1024 * 1024, max_header_count=10_000)
    with BackgroundServer(recorder, limits=roomy) as upstream:
        app = create_app(edge_settings(upstream.url, **server))
        with BackgroundServer(app) as gateway:
            yield gateway.url, recorder


# Bytes read past the response `read_response` returned (the next pipelined one), by socket.
_unread: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(
    method: str, target: str, fields: Sequence[tuple[str, str]] = (), host: str = "gateway"
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_all(sock: socket.socket, data: bytes) -> None:
    """Write `data`; a server that closed the connection half-way is no error here (the
    test then reads what it answered before closing)."""
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def read_response(sock: socket.socket) -> tuple[int, list[tuple[str, str]], bytes]:
    """One response (framed by Content-Length) off `sock`; fields in order, names lower."""
    data = _unread.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"closed after {data!r}")
        data += piece
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    fields = [(n.strip().lower(), v.strip()) for n, _, v in (x.partition(":") for x in lines)]
    length = int(dict(fields).get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    if len(body) > length:
        _unread[sock] = body[length:]
    return int(status_line.split()[1]), fields, body[:length]


def closed_by_peer(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (reading whatever it still sent), or None if it
    was still open after `within` seconds."""
    started = time.monotonic()
    deadline = started + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - started
