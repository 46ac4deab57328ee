"""Serve an ASGI app with uvicorn on a socket we bind ourselves.

Binding first means port 0 works (the kernel picks a free port nobody can take between "find
a port" and "listen on it") and the real address is known before the server starts, which
`bff demo` prints and the tests and benchmarks connect to. Every server speaks through
`EdgeProtocol` (`bff.serving.edge`), which bounds client connections by the app's `server`
settings (`EdgeLimits`).
"""

from __future__ import annotations

import asyncio
import gc
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType, TracebackType
from typing import Any, NoReturn, Self

import uvicorn
from starlette.types import ASGIApp

from bff.serving.edge import EdgeProtocol, set_limits
from bff.serving.limits import EdgeLimits

__all__ = [
    "DRAIN_TIMEOUT",
    "BackgroundServer",
    "EdgeLimits",
    "EdgeProtocol",
    "bind",
    "exit_quietly",
    "loop_factory",
    "run",
    "serve_on",
    "server_for",
    "tune_gc",
    "url_of",
]

START_TIMEOUT = 10.0
# Of `bff` and of each of its workers; `request_id` is "-" outside a request (`bff.request_id`).
LOG_FORMAT = "%(levelname)s %(name)s [%(request_id)s] %(message)s"


def tune_gc() -> None:
    """Move start-up objects out of the collector's way and collect young objects less often.

    A request allocates thousands of short-lived objects (records, dicts, futures); with the
    default thresholds the cyclic collector ran often enough to cost up to half of a large
    query's CPU, mostly rescanning the long-lived schema and modules. Freezing what exists
    after start-up and raising the first threshold keeps collections rare and cheap.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket; `reuse_port` lets each worker of `bff serve` have its own on one port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, before the server says it runs
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


DRAIN_TIMEOUT = 2.0  # seconds in-flight requests get on shutdown, unless `server.drain_timeout`


def server_for(
    app: ASGIApp,
    drain_timeout: float = DRAIN_TIMEOUT,
    limits: EdgeLimits | None = None,
    **options: Any,
) -> uvicorn.Server:
    """A uvicorn server for `app`: on SIGINT/SIGTERM it stops accepting, lets in-flight requests
    finish for up to `drain_timeout` seconds, then cancels them and returns. Its connections
    are bounded by `limits`, by default those of the app's settings (`EdgeLimits.for_app`)."""
    config = uvicorn.Config(
        app,
        http=EdgeProtocol,  # head, timeouts and connection cap of the app's `server` settings
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        server_header=False,
        # X-Forwarded-For is believed only from `server.trusted_proxies`, by the gateway itself
        # (bff.limits.clients); uvicorn's own rewrite would trust any loopback peer.
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(drain_timeout),  # whole seconds, rounded up
        **options,
    )
    if limits is not None:
        set_limits(config, limits)
    return uvicorn.Server(config)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed: the gateway's own loop should cost as little as it can."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(coroutine)


def serve_on(app: ASGIApp, sock: socket.socket, drain_timeout: float = DRAIN_TIMEOUT) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then exit with status 0.

    uvicorn raises the stop signal again once its graceful shutdown is done; the handler set
    here (restored by uvicorn then) makes that a quiet `SystemExit(0)`, as in each worker.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, exit_quietly)
    run(server_for(app, drain_timeout).serve(sockets=[sock]))


def exit_quietly(sig: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


class BackgroundServer:
    """An app served from a daemon thread: `with BackgroundServer(app) as s: s.url`."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: EdgeLimits | None = None,
    ) -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = server_for(app, limits=limits)
        self._thread = threading.Thread(target=self._run, name="bff-server", daemon=True)

    def _run(self) -> None:
        run(self.server.serve(sockets=[self.sock]))

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
