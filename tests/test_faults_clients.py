"""Clients that misbehave leak nothing (issue 21, "Faults"): a slow client sending its head a
byte at a time (slowloris), one that stops half-way through its body, and one that hangs up
while its query waits on a slow upstream. Afterwards the gateway holds as many client
connections (uvicorn's own count, and the kernel's sockets on its port) and asyncio tasks as
before, and repeating the abuse does not grow its memory; `/healthz` answers throughout.

The gateway runs in this process on a loop the test can see (`ObservedServer`); the clients
are raw loopback sockets.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bff.app import create_app
from bff.serving import BackgroundServer, run
from services import RunningServices, ServiceOptions, ServiceSpec
from tests.support import DASHBOARD, gateway_settings, running_shop, sign

WAIT = 20.0  # seconds the gateway may take to notice a client is gone, on a loaded machine
CLIENTS = 20  # misbehaving clients at once
LATENCY = 1.0  # seconds the slow inventory takes per call
HEAD = b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
MEMORY_BOUND = 1_500_000  # bytes still allocated after three more rounds of abuse
# ESTABLISHED and CLOSE_WAIT in /proc/net/tcp: sockets the server still holds open (CLOSE_WAIT:
# the client has gone and the server has not closed its side).
HELD = {"01", "08"}


class ObservedServer(BackgroundServer):
    """A background gateway whose event loop the test can count tasks on."""

    loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        run(serve())

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def tasks(self) -> int:
        """asyncio tasks alive on the gateway's loop, besides the one counting them."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(timeout=WAIT)

    def connections(self) -> int:
        """Client connections uvicorn is serving."""
        return len(self.server.server_state.connections)

    def sockets(self) -> int:
        """Accepted sockets on the gateway's port still open on its side."""
        held = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == self.port and fields[3] in HELD:
                held += 1
        return held

    def counts(self) -> tuple[int, int, int]:
        return self.connections(), self.sockets(), self.tasks()


class Unhandled(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def slow_shop() -> Iterator[RunningServices]:
    with running_shop(ServiceSpec("inventory", ServiceOptions(latency=LATENCY))) as shop:
        yield shop


@pytest.fixture
def gateway(slow_shop: RunningServices) -> Iterator[ObservedServer]:
    handler = Unhandled()
    logging.getLogger().addHandler(handler)
    config = gateway_settings(slow_shop.urls, {"timeout": {"total": "10s"}})
    try:
        with ObservedServer(create_app(config)) as server:
            healthz(server)  # one request served: lazily made things exist
            yield server
    finally:
        logging.getLogger().removeHandler(handler)
    assert handler.messages == []


def healthz(server: ObservedServer) -> int:
    with httpx.Client(base_url=server.url, timeout=5, trust_env=False) as client:
        return client.get("/healthz").status_code


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.05)


def back_to(server: ObservedServer, baseline: tuple[int, int, int]) -> None:
    """Wait until connections, sockets and tasks are each no more than at `baseline`."""
    deadline = time.monotonic() + WAIT
    while True:
        counts = server.counts()
        if all(now <= before for now, before in zip(counts, baseline, strict=True)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"(connections, sockets, tasks) {counts}, before {baseline}")
        time.sleep(0.05)


def connect(server: ObservedServer, count: int) -> list[socket.socket]:
    address = ("127.0.0.1", server.port)
    return [socket.create_connection(address, timeout=WAIT) for _ in range(count)]


def hang_up(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def dashboard_request() -> bytes:
    body = json.dumps({"query": DASHBOARD, "variables": {"first": 2}}).encode()
    head = HEAD + f"Authorization: Bearer {sign()}\r\n".encode()
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def slowloris(server: ObservedServer) -> None:
    """CLIENTS heads, a byte at a time to each in turn, never finished; then the clients go."""
    sockets = connect(server, CLIENTS)
    for index in range(len(HEAD)):
        for sock in sockets:
            sock.send(HEAD[index : index + 1])
        time.sleep(0.005)
    wait_until(lambda: server.connections() >= CLIENTS, "every slow client accepted")
    assert healthz(server) == 200  # while every slow head is open
    hang_up(sockets)


def half_bodies(server: ObservedServer) -> None:
    """CLIENTS requests whose body stops half-way; then the clients go."""
    sockets = connect(server, CLIENTS)
    for sock in sockets:
        sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"query": "' + b"x" * 400)
    wait_until(lambda: server.connections() >= CLIENTS, "every half body read")
    assert healthz(server) == 200
    hang_up(sockets)


def gone_mid_query(server: ObservedServer) -> None:
    """CLIENTS Dashboards sent whole; the clients go while the slow inventory is answering."""
    sockets = connect(server, CLIENTS)
    request = dashboard_request()
    for sock in sockets:
        sock.sendall(request)
    time.sleep(LATENCY / 2)  # the queries are waiting on the inventory now
    assert healthz(server) == 200
    hang_up(sockets)


ABUSES = [slowloris, half_bodies, gone_mid_query]


@pytest.mark.parametrize("abuse", ABUSES, ids=[a.__name__ for a in ABUSES])
def test_a_misbehaving_client_leaks_no_connection_or_task(
    gateway: ObservedServer, abuse: Callable[[ObservedServer], None]
) -> None:
    baseline = gateway.counts()
    abuse(gateway)
    back_to(gateway, baseline)
    assert healthz(gateway) == 200


def test_repeated_abuse_does_not_grow_memory(gateway: ObservedServer) -> None:
    baseline = gateway.counts()
    for abuse in ABUSES:  # warm-up: caches, pools and lazily made things exist afterwards
        abuse(gateway)
    settle(gateway, baseline)
    tracemalloc.start()
    try:
        for _ in range(3):
            for abuse in ABUSES:
                abuse(gateway)
        settle(gateway, baseline)
        still_allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert still_allocated < MEMORY_BOUND, f"{still_allocated} bytes still allocated"


def settle(gateway: ObservedServer, baseline: tuple[int, int, int]) -> None:
    """Back to `baseline`, and the slow inventory done with the calls it was still answering
    (the services run in this process too), then collected."""
    back_to(gateway, baseline)
    time.sleep(LATENCY * 1.5)
    gc.collect()


def requests_by_status(server: ObservedServer) -> dict[str, float]:
    """`bff_requests_total` of `/graphql`, added up by status class."""
    with httpx.Client(base_url=server.url, timeout=5, trust_env=False) as client:
        text = client.get("/metrics").text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("bff_requests_total{") and 'route="/graphql"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            totals[status] = totals.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def test_a_client_gone_mid_body_is_counted_as_gone_not_as_a_500(gateway: ObservedServer) -> None:
    baseline = gateway.counts()
    before = requests_by_status(gateway)
    half_bodies(gateway)
    back_to(gateway, baseline)
    after = requests_by_status(gateway)
    assert after.get("5xx", 0) == before.get("5xx", 0)
    assert after.get("4xx", 0) - before.get("4xx", 0) == CLIENTS
