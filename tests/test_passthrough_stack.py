"""Passthrough goes through its pool's whole transport stack, as GraphQL's calls do: retries on
another instance (never for a request body, which is sent once), one client span per attempt,
and instance accounting that ends when the streamed response does.

The upstreams are two small ASGI apps on loopback: `good` answers every request, `bad` answers
its health check and 503 to everything else; each counts what it was sent.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import Receive, Scope, Send

from bff.app import create_app
from bff.serving import BackgroundServer
from bff.telemetry.hub import Telemetry
from bff.upstream import Upstreams
from services import RunningServices
from tests.support import SHOP_SCHEMA, gateway_settings

BIG = 4 * 1024 * 1024


@dataclass
class Upstream:
    """An ASGI upstream that counts requests by method (its health checks apart)."""

    failing: bool
    seen: Counter[str] = field(default_factory=Counter)
    # `/big` sends its first piece, then waits for this before the rest (a body still going)
    more: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.more.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/health":
            status, body = 200, b"ok"
        else:
            self.seen[scope["method"]] += 1
            status, body = (503, b"down") if self.failing else (200, b"served")
            if scope["path"] == "/broken" and not self.failing:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"part", "more_body": True})
                raise RuntimeError("the upstream dies mid-body")
            if scope["path"] == "/big" and not self.failing:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                for n in range(BIG // 65536):
                    piece = b"x" * 65536
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    if n == 0 and not self.more.is_set():
                        await asyncio.to_thread(self.more.wait, 10)
                await send({"type": "http.response.body", "body": b""})
                return
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Gateway:
    url: str
    upstreams: Upstreams
    exporter: InMemorySpanExporter
    telemetry: Telemetry
    good: Upstream
    bad: Upstream


@pytest.fixture
def gateway(shop: RunningServices) -> Iterator[Gateway]:
    good, bad = Upstream(failing=False), Upstream(failing=True)
    with BackgroundServer(good) as good_server, BackgroundServer(bad) as bad_server:
        urls = {**shop.urls, "flaky": [bad_server.url, good_server.url]}
        routes = [
            {"name": "flaky", "upstream": "flaky", "methods": ["GET", "POST"], "auth": "public"}
        ]
        settings = gateway_settings(
            urls,
            {
                "retries": {"attempts": 2},
                "outlier": {"consecutive_failures": 1000},  # keep `bad` in the rotation
                "required": False,
            },
            routes=routes,
        )
        exporter = InMemorySpanExporter()
        telemetry = Telemetry(settings, SHOP_SCHEMA, exporter=exporter)
        app = create_app(settings, telemetry=telemetry)
        with BackgroundServer(app) as server:
            yield Gateway(server.url, app.state.upstreams, exporter, telemetry, good, bad)


def exported_client_spans(gateway: Gateway) -> list[ReadableSpan]:
    assert gateway.telemetry.tracing is not None and gateway.telemetry.tracing.flush()
    return [span for span in gateway.exporter.get_finished_spans() if span.kind == SpanKind.CLIENT]


def client_spans(gateway: Gateway) -> list[tuple[int, str, int]]:
    """(attempt, instance, status) of every client span exported so far."""
    spans = []
    for span in exported_client_spans(gateway):
        if span.attributes is not None:
            attributes = span.attributes
            spans.append(
                (
                    int(str(attributes["bff.attempt"])),
                    str(attributes["bff.instance"]),
                    int(str(attributes.get("http.response.status_code", 0))),
                )
            )
    return spans


def test_a_get_that_fails_is_retried_on_another_instance(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=10) as client:
        replies = [client.get("/api/flaky/x") for _ in range(6)]
    assert [r.status_code for r in replies] == [200] * 6
    assert [r.content for r in replies] == [b"served"] * 6
    assert gateway.bad.seen["GET"] >= 1  # round robin sent some first attempts there
    assert gateway.good.seen["GET"] == 6
    spans = client_spans(gateway)
    assert len(spans) == 6 + gateway.bad.seen["GET"]  # one span per attempt
    # a first attempt that met `bad`, then a second on `good`
    assert {(attempt, status) for attempt, _, status in spans} <= {(1, 503), (1, 200), (2, 200)}


def test_a_request_with_a_body_is_sent_once(gateway: Gateway) -> None:
    """A streamed body is spent by its one attempt; a POST is not idempotent either: the
    503 passes to the client as it is, and no instance saw the request twice."""
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=10) as client:
        statuses = [client.post("/api/flaky/x", content=b"payload").status_code for _ in range(6)]
        empty = [client.post("/api/flaky/x").status_code for _ in range(4)]
    assert gateway.good.seen["POST"] + gateway.bad.seen["POST"] == 10
    assert statuses.count(503) + empty.count(503) == gateway.bad.seen["POST"] > 0


def test_a_streamed_response_counts_in_flight_until_it_ends(gateway: Gateway) -> None:
    instances = gateway.upstreams["flaky"].instances
    gateway.good.more.clear()  # else loopback buffers may take all 4 MiB before the check
    with (
        httpx.Client(base_url=gateway.url, trust_env=False, timeout=10) as client,
        client.stream("GET", "/api/flaky/big") as reply,
    ):
        assert reply.status_code == 200
        pieces = reply.iter_raw(65536)
        size = len(next(pieces))
        assert sum(i.in_flight for i in instances) == 1  # head answered, body still going
        gateway.good.more.set()
        size += sum(len(piece) for piece in pieces)
    assert size == BIG
    for _ in range(500):
        if sum(i.in_flight for i in instances) == 0:
            break
        time.sleep(0.01)
    assert [i.in_flight for i in instances] == [0, 0]
    (served,) = [span for span in client_spans(gateway) if span[2] == 200]
    assert served[0] in (1, 2)


def test_a_client_that_hangs_up_mid_body_ends_the_attempt(gateway: Gateway) -> None:
    instances = gateway.upstreams["flaky"].instances
    port = int(gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/flaky/big HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    for _ in range(500):
        if sum(i.in_flight for i in instances) == 0:
            break
        time.sleep(0.01)
    assert [i.in_flight for i in instances] == [0, 0]
    assert any(span[2] == 200 for span in client_spans(gateway))  # its span ended too


def test_a_body_cut_short_upstream_is_its_attempts_error(gateway: Gateway) -> None:
    # the client's answer is cut short as well
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.HTTPError):
        client.get(f"{gateway.url}/api/flaky/broken").read()
    for _ in range(500):  # the span ends when the gateway sees the upstream's connection go
        served = [
            span
            for span in exported_client_spans(gateway)
            if span.attributes and span.attributes.get("http.response.status_code") == 200
        ]
        if served:
            break
        time.sleep(0.01)
    (span,) = served
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "ConnectionLost"
