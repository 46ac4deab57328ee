"""No request can take the gateway down: the worst queries we can write, against `bff serve`.

A real gateway process over the sample shop gets queries whose answers grow exponentially
with their nesting (`orders -> user -> orders` 50 deep with `first: 2`, with a token; and
`products -> reviews -> product` 10 deep, without one). Each must be answered with one
`QUERY_TOO_COMPLEX` error saying the response limit was hit, while `/healthz` keeps answering
and the process's peak resident memory (`VmHWM` in /proc/PID/status) stays bounded; SIGTERM
must end the process under that load within its drain timeout (plus a margin for a loaded
machine). A client that hangs up stops its request's upstream work.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import RunningServices, ServiceOptions, ServiceSpec
from tests.support import UpstreamCalls, gateway_settings, running_gateway, running_shop, sign
from tests.test_cli import BFF, child_env, valid_config, write_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SERVING = re.compile(r"bff: serving on (http://127\.0\.0\.1:\d+)/graphql")
START_DEADLINE = 20.0
DRAIN_TIMEOUT = 2.0
STOP_MARGIN = 20.0  # a loaded machine may take a while to tear the process down
PEAK_RSS_LIMIT_KB = 1_000_000  # the gateway idles near 100 MB; without the ceiling: > 7 GB
PATIENT = 60.0  # seconds any single request may take on a loaded machine
SLOW = 1.5  # seconds each call to the slowed upstreams takes


def nested_orders(depth: int) -> str:
    """`orders -> user -> orders` `depth` deep, two orders each: 2**depth orders asked."""
    selection = "id name"
    for _ in range(depth):
        selection = f"id orders(first: 2) {{ nodes {{ id total user {{ {selection} }} }} }}"
    return "{ " + selection.removeprefix("id ") + " }"


def nested_reviews(depth: int) -> str:
    """`products -> reviews -> product` `depth` deep, as many as the shop has of each."""
    selection = "id name"
    for _ in range(depth):
        selection = f"id name reviews(first: 1000) {{ id body product {{ {selection} }} }}"
    return "{ products(first: 1000) { nodes { " + selection + " } } }"


WORST = {
    "orders": (nested_orders(50), True),
    "reviews": (nested_reviews(10), False),
}


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    url: str
    stderr: Path

    peak_kb: int = 0

    def status(self, field: str) -> int:
        """A `kB` field of /proc/PID/status (VmRSS, VmHWM)."""
        text = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        found = re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)
        assert found is not None, text
        value = int(found.group(1))
        if field == "VmHWM":
            self.peak_kb = value
        return value


def start_gateway(tmp_path: Path, shop: RunningServices) -> Gateway:
    config = valid_config(shop.urls)
    config["server"]["drain_timeout"] = f"{DRAIN_TIMEOUT}s"
    # The response ceiling is the last line of defence beneath the query limits (which refuse
    # these documents as QUERY_TOO_DEEP by default, tests/test_query_limits.py) and the rate
    # limits: switched off here, so the ceiling and the process are what is tested.
    config["limits"] = {"enabled": False}
    config["rate_limits"] = {"enabled": False}
    path = write_config(tmp_path / "bff.yaml", config)
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*BFF, "serve", "--config", str(path), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=child_env(),
        )
    end = time.monotonic() + START_DEADLINE
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"bff ended with {process.returncode}: {stderr.read_text()}")
        found = SERVING.search(stderr.read_text(encoding="utf-8"))
        if found:
            return Gateway(process, found.group(1), stderr)
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"bff did not announce its port: {stderr.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def gateway(tmp_path: Path, shop: RunningServices) -> Iterator[Gateway]:
    running = start_gateway(tmp_path, shop)
    yield running
    stop(running.process)


def send(url: str, name: str) -> httpx.Response:
    query, needs_token = WORST[name]
    headers = {"Accept": "application/json"}
    if needs_token:
        headers["Authorization"] = f"Bearer {sign()}"
    return httpx.post(
        f"{url}/graphql", json={"query": query}, headers=headers, timeout=PATIENT, trust_env=False
    )


def assert_limit_error(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:500]
    body: dict[str, Any] = response.json()
    assert body.get("data") is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["message"].startswith("Response limit exceeded"), error


def test_the_worst_queries_get_an_error_while_healthz_answers(gateway: Gateway) -> None:
    assert len(nested_orders(50)) > 2000  # the reproduction: a ~2.3 KB document
    names = ["orders", "reviews"] * 3
    health: list[int] = []
    with ThreadPoolExecutor(4) as pool:
        responses = [pool.submit(send, gateway.url, name) for name in names]
        with httpx.Client(base_url=gateway.url, timeout=PATIENT, trust_env=False) as probe:
            while not all(r.done() for r in responses) or not health:
                health.append(probe.get("/healthz").status_code)
                time.sleep(0.05)
    for response in responses:
        assert_limit_error(response.result())
    assert set(health) == {200}
    assert gateway.status("VmHWM") < PEAK_RSS_LIMIT_KB
    assert gateway.process.poll() is None  # still serving
    assert "Traceback" not in gateway.stderr.read_text(encoding="utf-8")


def test_sigterm_ends_the_gateway_under_load(gateway: Gateway) -> None:
    stopping = threading.Event()
    answered = threading.Event()

    def hammer(name: str) -> None:
        while not stopping.is_set():
            try:
                send(gateway.url, name)
            except httpx.HTTPError:
                return  # the gateway went away, as asked
            answered.set()

    threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in WORST]
    for thread in threads:
        thread.start()
    try:
        assert answered.wait(PATIENT)  # under load: requests are being answered
        gateway.status("VmHWM")
        gateway.process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = gateway.process.wait(timeout=DRAIN_TIMEOUT + STOP_MARGIN)
        print(f"stopped in {time.monotonic() - began:.2f} s; peak RSS {gateway.peak_kb} kB")
    finally:
        stopping.set()
    assert code == 0
    for thread in threads:
        thread.join(timeout=PATIENT)


def test_a_client_that_hangs_up_stops_its_requests_upstream_work() -> None:
    slow = ServiceOptions(latency=SLOW)
    with running_shop(ServiceSpec("orders", slow), ServiceSpec("users", slow)) as shop:
        calls = UpstreamCalls(shop)
        settings = gateway_settings(shop.urls)
        query = "{ orders(first: 2) { nodes { user { orders(first: 2) { nodes { id } } } } } }"
        token = sign()
        with running_gateway(settings) as url:
            calls.reset()
            host, port = url.removeprefix("http://").split(":")
            body = json.dumps({"query": query}).encode()
            request = (
                f"POST /graphql HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            with socket.create_connection((host, int(port)), timeout=PATIENT) as client:
                client.sendall(request)
                end = time.monotonic() + PATIENT
                while not calls.by_service() and time.monotonic() < end:
                    time.sleep(0.01)  # until `orders` is loading
            # hung up. Left running, the request would load the users, then their orders,
            # within about 2 x SLOW; cancelled, it stops at the call that was in flight.
            time.sleep(3 * SLOW)
            assert calls.by_service() == {"orders": 1}
            # the gateway still answers the same query in full
            response = httpx.post(
                f"{url}/graphql",
                json={"query": query},
                headers={"Authorization": f"Bearer {token}"},
                timeout=PATIENT,
            )
            assert response.status_code == 200 and "errors" not in response.json()
        calls.close()
