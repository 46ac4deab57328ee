"""Start sample services for real, on loopback sockets.

Tests and benchmarks need real HTTP servers (never mocks of HTTP), several services at once and
sometimes several instances of one. Every instance is a uvicorn server; all of them share ONE
event loop, either in a background thread (`RunningServices`, for tests) or in the caller's
loop (`serve_forever`, for a foreground process).

We bind each socket ourselves before any server starts and hand it to uvicorn: with port 0 the
kernel picks a free port that nobody can take between "find a port" and "listen on it".

All instances started together share one `ShopStore` per seed, like replicas sharing a
database: an order placed through one instance can be read through another.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import httpx
import uvicorn
from fastapi import FastAPI

from services.common import ServiceOptions
from services.registry import APP_FACTORIES, SERVICE_NAMES
from services.store import ShopStore

ReadyCallback = Callable[[dict[str, list[str]]], None]

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServiceSpec:
    """Which service to run, how it behaves, and how many instances of it."""

    name: str
    options: ServiceOptions = field(default_factory=ServiceOptions)
    instances: int = 1

    def __post_init__(self) -> None:
        if self.name not in SERVICE_NAMES:
            raise ValueError(f"service {self.name!r}: unknown, expected one of {SERVICE_NAMES}")
        if self.instances < 1:
            raise ValueError(f"service {self.name!r}: instances must be >= 1")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed (services should not be a benchmark's bottleneck), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner: several of them share one loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Instance:
    name: str
    server: _Server
    sock: socket.socket
    url: str


class _ServiceGroup:
    """The bound sockets and uvicorn servers of one start, run on whichever loop awaits `run`."""

    def __init__(
        self, specs: Sequence[ServiceSpec], ports: dict[str, list[int]] | None, host: str
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"each service may appear once, got {names}")
        ports = ports or {}
        stores: dict[int, ShopStore] = {}
        self.instances: list[_Instance] = []
        self._exiting = False
        try:
            for spec in specs:
                wanted = ports.get(spec.name, [])
                seed = spec.options.seed
                store = stores.setdefault(seed, ShopStore.for_seed(seed))
                for k in range(spec.instances):
                    port = wanted[k] if k < len(wanted) else 0
                    sock = _bind(host, port, f"{spec.name}[{k}]")
                    app = APP_FACTORIES[spec.name](spec.options, store=store)
                    url = _url(host, sock.getsockname()[1])
                    self.instances.append(_Instance(spec.name, _server(app), sock, url))
        except BaseException:
            self.close_sockets()
            raise

    @property
    def urls(self) -> dict[str, list[str]]:
        urls: dict[str, list[str]] = {}
        for instance in self.instances:
            urls.setdefault(instance.name, []).append(instance.url)
        return urls

    async def run(self, on_ready: ReadyCallback) -> None:
        """Serve until `request_exit`, calling `on_ready` once every instance is healthy."""
        tasks = [
            asyncio.create_task(i.server.serve(sockets=[i.sock]), name=f"service {i.url}")
            for i in self.instances
        ]
        try:
            await self._until_started(tasks)
            await _until_healthy([i.url for i in self.instances])
            on_ready(self.urls)
            # One server dying (it should not) takes the others down with it.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for instance in self.instances:  # graceful; only a second request_exit forces
                instance.server.should_exit = True
            await asyncio.wait(tasks)
            self.close_sockets()
        for task in tasks:
            task.result()

    def request_exit(self) -> None:
        """Ask every server to shut down gracefully; asking twice stops waiting for requests."""
        force, self._exiting = self._exiting, True
        for instance in self.instances:
            instance.server.should_exit = True
            instance.server.force_exit = instance.server.force_exit or force

    def close_sockets(self) -> None:
        for instance in self.instances:
            instance.sock.close()

    async def _until_started(self, tasks: list[asyncio.Task[None]]) -> None:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not all(i.server.started for i in self.instances):
            failed = [t.get_name() for t in tasks if t.done()]
            if failed:
                raise RuntimeError(f"{', '.join(failed)} stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"services did not start within {START_TIMEOUT} s")
            await asyncio.sleep(0.01)


class RunningServices:
    """Sample services served from a background thread, for tests and in-process benchmarks.

    `with RunningServices([ServiceSpec("users")]) as running: running.urls["users"][0]`.
    """

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        ports: dict[str, list[int]] | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        self.specs = list(specs)
        self.ports = ports
        self.host = host
        self.urls: dict[str, list[str]] = {}
        self._group: _ServiceGroup | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def url(self, name: str, instance: int = 0) -> str:
        return self.urls[name][instance]

    def start(self) -> Self:
        """Bind, serve, and return once every instance answers `GET /health`."""
        if self._thread is not None:
            raise RuntimeError("RunningServices already started")
        self._ready.clear()
        self._error = None
        self._group = _ServiceGroup(self.specs, self.ports, self.host)
        self._thread = threading.Thread(target=self._serve, name="bff-services", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT + 5) or self._error is not None:
            error = self._error
            self.stop()
            raise RuntimeError(f"sample services failed to start: {error!r}") from error
        self.urls = self._group.urls
        return self

    def stop(self) -> None:
        """Shut every instance down and wait for the thread; safe to call twice."""
        if self._group is not None:
            self._group.request_exit()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._group is not None:
            self._group.close_sockets()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._group is not None
        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(self._group.run(on_ready=lambda _urls: self._ready.set()))
        except BaseException as exc:  # reported to the thread that called start()
            self._error = exc
        finally:
            self._ready.set()


async def serve_forever(
    specs: Sequence[ServiceSpec],
    ports: dict[str, list[int]] | None = None,
    on_ready: ReadyCallback | None = None,
    *,
    host: str = "127.0.0.1",
) -> None:
    """Serve `specs` on the running loop until SIGINT/SIGTERM (or cancellation).

    `on_ready(urls)` runs once every instance answers `GET /health`. A second signal stops
    waiting for in-flight requests.
    """
    group = _ServiceGroup(specs, ports, host)
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Signal handlers exist only on the main thread of a Unix process.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, group.request_exit)
            handled.append(sig)
    try:
        await group.run(on_ready or (lambda _urls: None))
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def _server(app: FastAPI) -> _Server:
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the host process's logging alone
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    return _Server(config)


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot bind service {what} to {host} port {port}: {exc.strerror}"
        ) from exc
    return sock


def _url(host: str, port: int) -> str:
    """The URL a client on this machine uses: wildcard hosts are reached through loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _until_healthy(urls: list[str]) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        for url in urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/health")).status_code == 200:
                        break
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"{url}/health did not answer 200 within {START_TIMEOUT} s")
                await asyncio.sleep(0.02)
