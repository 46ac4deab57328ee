"""Graceful shutdown of `bff serve` (SPEC section 10, "Shutdown"), as Kubernetes does it:
SIGTERM to the process (the supervisor of `--workers 2`, or the single server) while requests
are in flight.

The catalog answers slowly (`latency`), so requests are still waiting on it when SIGTERM
arrives. Every one of them must be answered in full; new connections must be refused at once
(the workers stop accepting); the process must end within `server.drain_timeout` plus the
supervisor's margin; and each worker must have run its shutdown in full (the app's lifespan
closes the upstream pools, then flushes telemetry): the spans of every in-flight request reach
the OTLP receiver before the process is gone. A request longer than the drain is cut off at the
drain's end, with a 503 the client can retry elsewhere, rather than holding the process.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.workers import STOP_MARGIN
from services import SERVICE_NAMES, RunningServices, ServiceOptions, ServiceSpec
from tests.otlp_receiver import OtlpReceiver
from tests.support import running_shop
from tests.test_cli import BFF, child_env, write_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")

IN_FLIGHT = 12
LATENCY = 2.0  # seconds the catalog takes: SIGTERM lands well inside it
DEADLINE = 20.0
SERVING = re.compile(r"bff: serving on http://127\.0\.0\.1:(\d+)/graphql")


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def config(shop: RunningServices, drain: str, otlp: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 8000, "drain_timeout": drain},
        "upstreams": {
            name: {
                "instances": [{"url": u} for u in shop.urls[name]],
                "timeout": {"total": "30s"},
                "retries": {"attempts": 1},
            }
            for name in SERVICE_NAMES
        },
        "auth": {"jwt": {"algorithm": "HS256", "secret": "shutdown-test-secret-0123456789abcdef"}},
        "rate_limits": {"enabled": False},
        "telemetry": {"exporter": "otlp_http", "endpoint": otlp, "service_name": "bff-shutdown"},
    }


def serve(tmp_path: Path, data: dict[str, Any], workers: int = 2) -> Served:
    path = write_config(tmp_path / "bff.yaml", data)
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*BFF, "serve", "--config", str(path), "--workers", str(workers), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=child_env(),
        )
    served = Served(process, 0, stderr)
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"bff ended with {process.returncode}: {served.log()}")
        found = SERVING.search(served.log())
        if found:
            served.port = int(found.group(1))
            return served
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"bff did not announce its port: {served.log()}")


@pytest.fixture
def slow_shop() -> Iterator[RunningServices]:
    with running_shop(ServiceSpec("catalog", ServiceOptions(latency=LATENCY))) as shop:
        yield shop


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def catalog_requests(shop: RunningServices) -> int:
    [url] = shop.urls["catalog"]
    return int(httpx.get(f"{url}/_stats", trust_env=False).json()["requests"])


def wait_for(condition: Any, what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


class InFlight:
    """`count` GraphQL requests, each on its own connection (so both workers get some)."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.results: list[httpx.Response | BaseException] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(count)
        ]

    def _send(self, i: int) -> None:
        body = {"query": f'query Slow{i} {{ product(id: "{i + 1}") {{ id name }} }}'}
        try:
            with httpx.Client(timeout=DEADLINE, trust_env=False) as client:
                outcome: httpx.Response | BaseException = client.post(
                    f"http://127.0.0.1:{self.port}/graphql", json=body
                )
        except BaseException as error:  # a failed request is what we count
            outcome = error
        with self.lock:
            self.results.append(outcome)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> list[httpx.Response | BaseException]:
        for thread in self.threads:
            thread.join(DEADLINE)
        return self.results


def worker_pids(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(int(child))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("workers", [2, 1])
def test_sigterm_mid_load_finishes_every_in_flight_request(
    tmp_path: Path, slow_shop: RunningServices, receiver: OtlpReceiver, workers: int
) -> None:
    """`--workers 1` is the single-process server a one-CPU container runs."""
    served = serve(tmp_path, config(slow_shop, "10s", receiver.url), workers)
    try:
        children = worker_pids(served.process.pid)
        assert len(children) == (workers if workers > 1 else 0)
        before = catalog_requests(slow_shop)
        load = InFlight(served.port, IN_FLIGHT)
        load.start()
        # Every request has reached the catalog: all are in flight in some worker.
        wait_for(lambda: catalog_requests(slow_shop) - before >= IN_FLIGHT, "requests in flight")
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        # Stops accepting at once, while the in-flight requests are still being answered.
        wait_for(lambda: refuses_connections(served.port), "new connections refused", LATENCY)
        assert time.monotonic() - signalled < LATENCY
        results = load.join()
        code = served.process.wait(timeout=DEADLINE)
    finally:
        if served.process.poll() is None:
            served.process.kill()
    failed = [r for r in results if not isinstance(r, httpx.Response) or r.status_code != 200]
    assert len(results) == IN_FLIGHT
    assert not failed, failed
    for response in results:
        assert isinstance(response, httpx.Response)
        body = response.json()
        assert "errors" not in body, body
        assert body["data"]["product"]["id"]
    assert code == 0, served.log()
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert "Traceback" not in served.log()
    # Each worker shut down in order (pools closed, then telemetry flushed): every in-flight
    # request's operation span was exported before the process ended.
    operations = {
        span.attributes.get("graphql.operation.name")
        for span in receiver.spans
        if span.service == "bff-shutdown"
    }
    assert {f"Slow{i}" for i in range(IN_FLIGHT)} <= operations


def test_a_request_longer_than_the_drain_is_cut_off_at_its_end(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    with running_shop(ServiceSpec("catalog", ServiceOptions(latency=15.0))) as shop:
        served = serve(tmp_path, config(shop, "1s", receiver.url))
        try:
            load = InFlight(served.port, 1)
            before = catalog_requests(shop)
            load.start()
            wait_for(lambda: catalog_requests(shop) > before, "the request in flight")
            signalled = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            code = served.process.wait(timeout=DEADLINE)
            took = time.monotonic() - signalled
            [outcome] = load.join()
        finally:
            if served.process.poll() is None:
                served.process.kill()
    assert code == 0, served.log()
    # Ended by the worker's own drain (1 s, then cancelled), not by the supervisor's SIGKILL
    # at drain + STOP_MARGIN, and long before the catalog's 15 s answer.
    assert took < 1.0 + STOP_MARGIN, took
    # Told so, retryably (another replica can serve it), not a bare 500 and a traceback.
    assert isinstance(outcome, httpx.Response), outcome
    assert outcome.status_code == 503, outcome.text
    [error] = outcome.json()["errors"]
    assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "shutting down" in error["message"]
    assert "Traceback" not in served.log()
    assert '"status":503' in served.log()  # the access line says what the client got
