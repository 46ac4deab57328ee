"""Faults under load (issue 21, "Faults"): one of three instances of every service dies while
Dashboards stream in, and an upstream hangs. Loopback only, every wait bounded.

The instances are real sample services, each on its own loop (`tests.killable`): killing one
closes its listener and its connections as a crashed process would, mid-request included. The
hung upstream is a listener that accepts connections and never answers a byte.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from bff.app import create_app
from bff.serving import BackgroundServer
from services import SERVICE_NAMES, RunningServices
from tests.killable import KillableInstances
from tests.support import DASHBOARD, GraphQLClient, gateway_settings, running_shop, sign

WAIT = 20.0  # seconds any awaited state may take on a loaded machine
FAST_CHECKS = {"interval": "50ms", "timeout": "300ms", "unhealthy_threshold": 2}
CLIENTS = 4


def wait_until(condition: Callable[[], bool], what: str, patience: float = WAIT) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {patience} s: {what}")
        time.sleep(0.02)


@pytest.fixture
def three_of_each() -> Iterator[dict[str, KillableInstances]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(KillableInstances(name, 3)) for name in SERVICE_NAMES}


class Load:
    """Dashboards from a few client threads until stopped; every answer kept."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.bodies: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(CLIENTS)
        self._running: list[Any] = []

    def start(self) -> None:
        self._running = [self._pool.submit(self._client, k) for k in range(CLIENTS)]

    def _client(self, k: int) -> None:
        client = GraphQLClient(self.url)
        try:
            while not self._stop.is_set():
                response = client.post(DASHBOARD, {"first": 5 + k}, token=self.token)
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:300]}")
                else:
                    self.bodies.append(response.json())
        except httpx.HTTPError as error:  # a client-visible failure too
            self.failures.append(repr(error))
        finally:
            client.close()

    def count(self) -> int:
        return len(self.bodies) + len(self.failures)

    def stop(self) -> None:
        self._stop.set()
        for future in self._running:
            future.result(timeout=WAIT)
        self._pool.shutdown()


def test_one_of_three_instances_of_every_service_killed_mid_load_costs_no_query(
    three_of_each: dict[str, KillableInstances],
) -> None:
    urls = {name: group.urls for name, group in three_of_each.items()}
    config = gateway_settings(urls, {"health_check": FAST_CHECKS})
    app = create_app(config)
    upstreams = app.state.upstreams
    with BackgroundServer(app) as server:
        reference = GraphQLClient(server.url)
        expected = {
            k: reference.data(DASHBOARD, {"first": 5 + k}, token=sign()) for k in range(CLIENTS)
        }
        reference.close()
        load = Load(server.url, sign())
        load.start()
        try:
            wait_until(lambda: load.count() >= 40, "load flowing")
            for group in three_of_each.values():
                group.kill(1)
            killed_at = load.count()
            wait_until(
                lambda: all(not upstreams[name].instances[1].healthy for name in SERVICE_NAMES),
                "every dead instance checked out",
            )
            wait_until(lambda: load.count() >= killed_at + 80, "load after the kills")
            for group in three_of_each.values():
                group.restart(1)
            wait_until(
                lambda: all(upstreams[name].instances[1].healthy for name in SERVICE_NAMES),
                "every restarted instance back in",
            )
            back_at = load.count()
            wait_until(lambda: load.count() >= back_at + 40, "load after the restarts")
        finally:
            load.stop()
    assert load.failures == []
    assert [b for b in load.bodies if "errors" in b] == []
    firsts = {len(b["data"]["orders"]["nodes"]) - 5 for b in load.bodies}
    assert firsts <= set(expected)
    for body in load.bodies:
        k = len(body["data"]["orders"]["nodes"]) - 5
        assert body["data"] == expected[k]


# --- an upstream that hangs -------------------------------------------------------------------


class Hung:
    """A loopback listener that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def hung() -> Iterator[Hung]:
    server = Hung()
    yield server
    server.close()


TIMEOUT = 4.0  # the hung upstream's timeout.total: /healthz has that long to answer


@pytest.fixture(scope="module")
def quiet_shop() -> Iterator[RunningServices]:
    with running_shop() as shop:
        yield shop


def test_a_hung_upstream_ends_at_its_timeout_with_partial_data_and_healthz_answers_meanwhile(
    quiet_shop: RunningServices, hung: Hung
) -> None:
    urls = {**quiet_shop.urls, "inventory": [hung.url]}
    config = gateway_settings(urls, {"timeout": {"connect": "500ms", "total": f"{TIMEOUT}s"}})
    token = sign()
    with BackgroundServer(create_app(config)) as server:
        client = GraphQLClient(server.url)
        hung_calls = 6
        started = time.monotonic()
        with ThreadPoolExecutor(hung_calls) as pool:
            calls = [
                pool.submit(client.post, DASHBOARD, {"first": 3}, token=token)
                for _ in range(hung_calls)
            ]
            wait_until(lambda: len(hung.accepted) >= 1, "the hung upstream reached")
            with httpx.Client(base_url=server.url, timeout=TIMEOUT, trust_env=False) as probe:
                health = probe.get("/healthz")
            answered_after = time.monotonic() - started
            outstanding = sum(not call.done() for call in calls)
            responses = [call.result(timeout=WAIT) for call in calls]
            took = time.monotonic() - started
        client.close()
    assert took >= TIMEOUT  # nothing gave up before the configured timeout
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    # /healthz answered while every hung call was still waiting for the upstream
    assert outstanding == hung_calls, (outstanding, answered_after)
    for response in responses:
        assert response.status_code == 200
        body = response.json()
        nodes = body["data"]["orders"]["nodes"]
        assert len(nodes) == 3
        items = [item for node in nodes for item in node["items"]]
        assert all(item["product"]["stock"] is None for item in items)
        assert all(item["product"]["name"] for item in items)  # the rest is served
        codes = {error["extensions"]["code"] for error in body["errors"]}
        assert codes == {"UPSTREAM_TIMEOUT"}
        assert all(error["path"][-1] == "stock" for error in body["errors"])
