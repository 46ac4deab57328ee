"""`bff serve --workers 2`, run as real processes: a supervisor and two workers on one port.

Each worker has its own SO_REUSEPORT socket, so both must accept connections; the supervisor
must restart a killed worker, stop them all on SIGTERM and refuse a port that is taken.
Workers are found under /proc (the supervisor's children running `spawn_main`) and the
connections a worker holds by matching its socket fds with /proc/net/tcp.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services import SERVICE_NAMES
from tests.test_cli import BFF, child_env, valid_config, write_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")

DEADLINE = 15.0
CONNECTIONS = 16
SERVING = re.compile(r"bff: serving on http://127\.0\.0\.1:(\d+)/graphql")
TCP_ESTABLISHED = "01"  # connection states as /proc/net/tcp writes them
TCP_LISTEN = "0A"


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8")


def config_file(tmp_path: Path) -> Path:
    """Every upstream on a loopback port nobody serves: /healthz and `__typename` need none."""
    urls = {name: ["http://127.0.0.1:9"] for name in SERVICE_NAMES}
    return write_config(tmp_path / "bff.yaml", valid_config(urls))


def start(tmp_path: Path) -> Gateway:
    """`bff serve --workers 2 --port 0`, once it has announced the port it serves on."""
    stderr = tmp_path / "stderr"
    config = str(config_file(tmp_path))
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [*BFF, "serve", "--config", config, "--workers", "2", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=child_env(),
        )
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"bff ended with {process.returncode}: {stderr.read_text()}")
        found = SERVING.search(stderr.read_text(encoding="utf-8"))
        if found:
            return Gateway(process, int(found.group(1)), stderr)
        time.sleep(0.02)
    stop(process)
    pytest.fail(f"bff did not announce its port within {DEADLINE} s: {stderr.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    running = start(tmp_path_factory.mktemp("workers"))
    yield running
    stop(running.process)


def workers_of(pid: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue  # it has just ended
            if b"spawn_main" in cmdline:
                found.add(int(child))
    return found


def wait_for_workers(pid: int, count: int, gone: int | None = None) -> set[int]:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        workers = workers_of(pid)
        if len(workers) == count and gone not in workers:
            return workers
        time.sleep(0.05)
    pytest.fail(f"supervisor {pid} does not have {count} workers: {workers_of(pid)}")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pids: set[int], deadline: float = 5.0) -> set[int]:
    """Those of `pids` still running after `deadline` seconds."""
    end = time.monotonic() + deadline
    while any(alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    return {pid for pid in pids if alive(pid)}


def sockets_of(pid: int, port: int, state: str) -> set[str]:
    """The inodes of the TCP sockets of process `pid` on local `port` in `state`."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == state and fields[9] in inodes:
            found.add(fields[9])
    return found


def spread_over_workers(gateway: Gateway, workers: set[int]) -> dict[int, int]:
    """Open CONNECTIONS keep-alive connections, one request each; connections per worker."""
    with ExitStack() as stack:
        for _ in range(CONNECTIONS):
            connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
            stack.callback(connection.close)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert response.status == 200
            response.read()  # the connection stays open for the next request
        return {pid: len(sockets_of(pid, gateway.port, TCP_ESTABLISHED)) for pid in workers}


def test_serves_healthz_and_graphql(gateway: Gateway) -> None:
    health = httpx.get(f"{gateway.url}/healthz", timeout=5, trust_env=False)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    answer = httpx.post(
        f"{gateway.url}/graphql", json={"query": "{ __typename }"}, timeout=5, trust_env=False
    )
    assert answer.status_code == 200
    assert answer.json() == {"data": {"__typename": "Query"}, "extensions": {"cost": 1}}


def test_each_worker_listens_on_its_own_socket_and_accepts(gateway: Gateway) -> None:
    workers = wait_for_workers(gateway.process.pid, 2)
    listening = [sockets_of(pid, gateway.port, TCP_LISTEN) for pid in workers]
    assert [len(inodes) for inodes in listening] == [1, 1]
    assert listening[0] != listening[1], "the workers share one socket"
    assert sockets_of(gateway.process.pid, gateway.port, TCP_LISTEN) == set()
    held = spread_over_workers(gateway, workers)
    assert sum(held.values()) == CONNECTIONS, held
    assert all(count >= 1 for count in held.values()), held


def test_a_killed_worker_is_replaced(gateway: Gateway) -> None:
    before = wait_for_workers(gateway.process.pid, 2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = wait_for_workers(gateway.process.pid, 2, gone=victim)
    assert len(after - before) == 1
    health = httpx.get(f"{gateway.url}/healthz", timeout=5, trust_env=False)
    assert health.status_code == 200
    # The replacement serves too, once it has built its app and bound its socket.
    end = time.monotonic() + DEADLINE
    held = spread_over_workers(gateway, after)
    while not all(held.values()) and time.monotonic() < end:
        time.sleep(0.1)
        held = spread_over_workers(gateway, after)
    assert all(count >= 1 for count in held.values()), held
    assert f"worker {victim} was killed by SIGKILL; starting another" in gateway.log()


def test_sigterm_stops_the_supervisor_and_its_workers(tmp_path: Path) -> None:
    running = start(tmp_path)
    workers = wait_for_workers(running.process.pid, 2)
    running.process.send_signal(signal.SIGTERM)
    try:
        assert running.process.wait(timeout=5) == 0
    finally:
        stop(running.process)
    assert wait_until_gone(workers, deadline=0.5) == set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/healthz", timeout=2, trust_env=False)
    assert "Traceback" not in running.log()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    running = start(tmp_path)
    workers = wait_for_workers(running.process.pid, 2)
    running.process.kill()  # no chance to stop them: they must notice on their own
    running.process.wait(timeout=5)
    assert wait_until_gone(workers) == set()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/healthz", timeout=2, trust_env=False)


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path, gateway: Gateway) -> None:
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        # A plain listener, and another `bff --workers` whose SO_REUSEPORT group a careless
        # bind would join.
        for port in (plain.getsockname()[1], gateway.port):
            config = config_file(tmp_path)
            result = subprocess.run(
                [*BFF, "serve", "--config", str(config), "--workers", "2", "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=DEADLINE,
                env=child_env(),
            )
            assert result.returncode == 1, result.stderr
            assert result.stderr.strip().splitlines() == [
                f"bff: cannot listen on 127.0.0.1:{port}: Address already in use; "
                "is another server running there?"
            ]
