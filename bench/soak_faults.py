"""The soak's moving parts: three hosts of sample services, a Redis that survives a restart, a
proxy that can slow one instance, and the schedule of faults.

Each *host* is one `python -m services` process serving all six services on fixed ports, so a
host can be killed (SIGKILL: sockets reset, as a crash) and started again on the same ports, and
the gateway's pools, which list every host's instance, see one instance of each service die and
return. Hosts 0 and 1 are reached directly; host 2 through `SlowProxies` (a forwarder per
service, in a thread of its own), which add latency to one of them on demand: an upstream slowed
without a restart. Host 2 is never killed, so a kill never looks like a slow instance.

Redis keeps its data across the restart (append-only file, stopped with SIGTERM, which flushes
it), as a deployed Redis does: the fault is the time it is away, not the loss of every token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Child, Children, Pinning, free_port
from bench.stack import SERVICES, START_TIMEOUT

HOSTS = 3
SLOW_HOST = 2  # reached through the proxies, never killed
KILLABLE_HOSTS = (0, 1)
SLOWED_SERVICES = ("catalog", "orders", "users")  # the slow fault's rotation
FAULTS = ("kill", "redis", "slow")  # the rotation, after the quiet first period
PORT_STEP = 10  # `services --port-base P`: service i listens on P + 10 * i


@dataclass(frozen=True)
class Period:
    """One row of the report: `fault` (None: quiet) is on during [fault_start, fault_end)."""

    index: int
    start: float  # seconds since the soak started
    end: float
    fault: str | None
    fault_start: float
    fault_end: float


def schedule(total_s: float, every_s: float) -> list[Period]:
    """Periods of `every_s` seconds over `total_s`: the first quiet, then `FAULTS` in rotation.

    Each fault starts a sixth into its period and lasts half of it, so the recovery falls in
    the same period (its p99 and errors include it)."""
    periods = []
    count = max(1, round(total_s / every_s))
    for index in range(count):
        start = index * every_s
        end = min(total_s, start + every_s) if index == count - 1 else start + every_s
        fault = None if index == 0 else FAULTS[(index - 1) % len(FAULTS)]
        fault_start = start + every_s / 6
        periods.append(Period(index, start, end, fault, fault_start, fault_start + every_s / 2))
    return periods


def free_port_base(tries: int = 200) -> int:
    """A port base P with P + 10 * i free for every service i (a moment ago)."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 60000 - PORT_STEP * len(SERVICES))
        if all(_port_free(base + PORT_STEP * i) for i in range(len(SERVICES))):
            return base
    raise RuntimeError("found no free range of ports for a services host")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Hosts:
    """The three services hosts, each on ports of its own that it keeps across a restart."""

    def __init__(self, children: Children, pinning: Pinning) -> None:
        self.children = children
        self.pinning = pinning
        self.bases = [free_port_base() for _ in range(HOSTS)]
        self.processes: list[Child | None] = [None] * HOSTS
        self.restarts = 0

    def url(self, host: int, service: str) -> str:
        return f"http://127.0.0.1:{self.port(host, service)}"

    def port(self, host: int, service: str) -> int:
        return self.bases[host] + PORT_STEP * SERVICES.index(service)

    def start_all(self) -> None:
        """Every host, started at once and waited for together (each takes seconds)."""
        children = [self._launch(host) for host in range(HOSTS)]
        for host, child in enumerate(children):
            child.wait_for_line(lambda line: line.strip() == "ready", START_TIMEOUT)
            self.processes[host] = child

    def start(self, host: int) -> None:
        child = self._launch(host)
        child.wait_for_line(lambda line: line.strip() == "ready", START_TIMEOUT)
        self.processes[host] = child

    def _launch(self, host: int) -> Child:
        argv = [
            *self.pinning.prefix(self.pinning.load_core),
            sys.executable,
            "-m",
            "services",
            *SERVICES,
            "--port-base",
            str(self.bases[host]),
            "--host",
            "127.0.0.1",
        ]
        name = f"host-{host}" + (f"-again-{self.restarts}" if self.restarts else "")
        return self.children.start(name, argv)

    def kill(self, host: int) -> None:
        child = self.processes[host]
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        self.children.stop(child)
        self.restarts += 1


class DurableRedis:
    """A private redis-server on a fixed port whose data outlives a restart (AOF)."""

    def __init__(self, children: Children, pinning: Pinning, directory: Path) -> None:
        self.children = children
        self.pinning = pinning
        self.directory = directory
        self.port = free_port()
        self.child: Child | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            *self.pinning.prefix(self.pinning.load_core),
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes",
        ]
        self.starts += 1
        self.child = self.children.start(f"redis-{self.starts}", argv)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _pong(self.port):
                return
            if not self.child.alive():
                raise self.child.failed("exited while starting")
            time.sleep(0.05)
        raise self.child.failed("did not answer PING within 20 s")

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file and exits), SIGKILL after a grace."""
        if self.child is not None:
            self.children.stop(self.child)
            self.child = None


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class SlowProxies:
    """Loopback forwarders to one host's services, on an event loop in a thread of their own
    (so the load generator's timing does not share a loop with them). `slow(service, s)` holds
    every request chunk to that service `s` seconds before forwarding it."""

    def __init__(self, targets: dict[str, int]) -> None:
        self.targets = targets  # service -> port of the real instance
        self.ports: dict[str, int] = {}
        self.delays: dict[str, float] = dict.fromkeys(targets, 0.0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []

    def start(self) -> None:
        self._thread.start()
        for service in self.targets:
            future = asyncio.run_coroutine_threadsafe(self._listen(service), self._loop)
            self.ports[service] = future.result(timeout=10)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def slow(self, service: str, seconds: float) -> None:
        self.delays[service] = seconds  # a float store: read by the proxy thread as is

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await asyncio.sleep(0.01)  # the closed transports' sockets close on the next turns

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    async def _listen(self, service: str) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.CancelledError):  # cancelled only by `stop`
                await self._forward(service, reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _forward(
        self, service: str, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.targets[service])
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                self._pump(client_r, server_w, service),
                self._pump(server_r, client_w, None),
                return_exceptions=True,
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, delayed: str | None
    ) -> None:
        try:
            while data := await source.read(65536):
                if delayed is not None and (delay := self.delays[delayed]) > 0:
                    await asyncio.sleep(delay)
                sink.write(data)
                await sink.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.write_eof()


def upstreams(
    hosts: Hosts, proxies: SlowProxies, balancer: str = "round_robin"
) -> dict[str, dict[str, object]]:
    """The gateway's `upstreams`: every service over hosts 0 and 1 directly and host 2's proxy,
    each balanced by `balancer`."""
    config: dict[str, dict[str, object]] = {}
    for service in SERVICES:
        urls: Sequence[str] = [hosts.url(k, service) for k in KILLABLE_HOSTS]
        instances = [{"url": url} for url in [*urls, proxies.url(service)]]
        config[service] = {"instances": instances, "balancer": balancer}
    return config
