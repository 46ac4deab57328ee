"""`bff serve --workers N`: N worker processes, each listening on its own SO_REUSEPORT socket.

Why not uvicorn's multiprocess mode: its workers accept from one shared socket, so whichever
is awake first takes the next connection and long-lived keep-alive connections pile up
unevenly (a 63 % / 37 % CPU split of two workers was measured under 64 connections). With one
socket per worker on the same port, Linux hashes each new connection to one socket of the
group, so connections spread evenly.

The parent serves nothing. It checks that the port is free and holds it with a bound socket
that never listens (only listening sockets join the group, so it gets no connections); the
port it got is the one the workers bind, which makes port 0 work. It starts the workers with
"spawn" (a clean interpreter each, nothing inherited from the parent's imports), announces
once all of them serve, restarts one that dies, gives up when they keep dying, and on
SIGINT/SIGTERM stops them gracefully. It also gives the workers one metrics directory
(`bff.telemetry.multiproc`), so a scrape of any worker adds up the numbers of all.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from bff.config import Settings
from bff.request_id import install_log_records
from bff.serving import bind, exit_quietly, run, server_for, tune_gc
from bff.telemetry.logs import configure_logging
from bff.telemetry.multiproc import shared_metrics_dir, worker_exited

# Linux balances connections over a SO_REUSEPORT group; BSD and macOS have the option but
# do not balance, so they keep uvicorn's shared socket.
REUSE_PORT_BALANCES = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
START_TIMEOUT = 30.0  # seconds for every worker to serve before the supervisor gives up
STOP_MARGIN = 5.0  # seconds past `server.drain_timeout` before a stopping worker is killed
CRASH_LIMIT = 5  # this many worker deaths within CRASH_WINDOW seconds: a restart would not help
CRASH_WINDOW = 10.0


class SupervisorError(Exception):
    """Why the workers cannot run, in one line for the operator."""


def reserve(host: str, port: int) -> socket.socket:
    """Check that `host:port` is free and hold it for the workers (port 0: a free port).

    The check is an ordinary server bind, so any listener fails it, even another SO_REUSEPORT
    group of this user that the reserving socket alone would quietly join. The reserving
    socket has SO_REUSEPORT without SO_REUSEADDR and never listens: the workers can join it,
    other servers cannot bind the port meanwhile, and it is never handed a connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]
        held = socket.socket(family, socket.SOCK_STREAM)
        try:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            held.bind((host, port))
        except OSError:
            held.close()
            raise
    except OSError as error:
        raise SupervisorError(cannot_listen(host, port, error)) from None
    return held


def cannot_listen(host: str, port: int, error: OSError) -> str:
    hint = "; is another server running there?" if error.errno == errno.EADDRINUSE else ""
    return f"cannot listen on {host}:{port}: {error.strerror or error}{hint}"


def worker_main(settings: Settings, host: str, port: int, supervisor: Connection) -> None:
    """One worker: build the app, listen on its own socket, serve until SIGINT/SIGTERM.

    It binds only once the app is built, so a restarted worker is not handed connections
    before it can answer them. A stop signal before uvicorn takes the signals over, and the
    one uvicorn raises again after its graceful shutdown, end the process with status 0.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, exit_quietly)
    install_log_records()  # before any handler formats the request_id
    configure_logging(settings.logging.level, settings.logging.format)
    from bff.app import create_app  # here, so the idle supervisor never loads the app

    app = create_app(settings)
    tune_gc()
    try:
        sock = bind(host, port, reuse_port=True)
    except OSError as error:
        print(f"bff: worker {os.getpid()}: {cannot_listen(host, port, error)}", file=sys.stderr)
        raise SystemExit(1) from None
    run(_serve(server_for(app, settings.server.drain_timeout), sock, supervisor))


async def _serve(server: uvicorn.Server, sock: socket.socket, supervisor: Connection) -> None:
    """Serve on `sock`, telling the supervisor once uvicorn has started.

    The supervisor never writes to its end of the pipe, so the pipe turns readable only when
    the supervisor is gone (killed with SIGKILL, say): the worker then stops rather than
    serving on, orphaned, with the port.
    """
    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        loop.remove_reader(supervisor.fileno())
        server.should_exit = True

    loop.add_reader(supervisor.fileno(), orphaned)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        with contextlib.suppress(OSError):  # the supervisor is gone: `orphaned` stops us
            supervisor.send(os.getpid())
    await serving


@dataclass
class Worker:
    process: BaseProcess
    pipe: Connection  # open while the worker lives: closing it tells the worker to stop
    serving: bool = False


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


class Supervisor:
    """Starts, watches, restarts and stops the workers of one `bff serve`."""

    def __init__(self, settings: Settings, host: str, port: int, count: int) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.count = count
        self.context = multiprocessing.get_context("spawn")  # fork would copy our imports
        self.workers: list[Worker] = []
        self.deaths: deque[float] = deque()
        self.stopping = False

    def serve(self, on_serving: Callable[[int], None]) -> int:
        """Run until SIGINT/SIGTERM (then 0); `on_serving(port)` once every worker serves.

        Raises `SupervisorError` when the port is taken, the workers do not start in time or
        keep dying. Signals wake the wait through a socket (`signal.set_wakeup_fd`), so a stop
        is seen at once without polling.
        """
        held = reserve(self.host, self.port)
        self.port = held.getsockname()[1]
        wake, wake_writer = socket.socketpair()
        wake.setblocking(False)
        wake_writer.setblocking(False)
        handlers = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        wakeup_fd = signal.set_wakeup_fd(wake_writer.fileno())
        metrics_dir = contextlib.ExitStack()
        metrics_dir.enter_context(shared_metrics_dir())
        try:
            for _ in range(self.count):
                self._start()
            self._watch(wake, on_serving)
            return 0
        finally:
            self._stop_workers()
            metrics_dir.close()
            signal.set_wakeup_fd(wakeup_fd)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            for sock in (wake, wake_writer, held):
                sock.close()

    def _watch(self, wake: socket.socket, on_serving: Callable[[int], None]) -> None:
        deadline: float | None = time.monotonic() + START_TIMEOUT
        while not self.stopping:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            waiting: list[Connection | int] = [w.process.sentinel for w in self.workers]
            waiting += [w.pipe for w in self.workers if not w.serving]
            wait([wake, *waiting], timeout)
            while _drain(wake):
                pass
            self._note_ready()
            self._replace_dead()
            if deadline is None:
                continue
            if all(w.serving for w in self.workers):
                on_serving(self.port)
                deadline = None
            elif time.monotonic() > deadline:
                raise SupervisorError(f"the workers did not start within {START_TIMEOUT:g} s")

    def _start(self) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(
            target=worker_main,
            args=(self.settings, self.host, self.port, theirs),
            name="bff-worker",
        )
        process.start()
        theirs.close()  # the worker holds the only copy: its exit reads as EOF here
        self.workers.append(Worker(process, ours))

    def _note_ready(self) -> None:
        for worker in self.workers:
            if not worker.serving and worker.pipe.poll():
                try:
                    worker.pipe.recv()
                    worker.serving = True
                except EOFError:  # it is exiting before it served: reap it for `_replace_dead`
                    worker.process.join(STOP_MARGIN)

    def _replace_dead(self) -> None:
        for worker in [w for w in self.workers if w.process.exitcode is not None]:
            self.workers.remove(worker)
            worker.pipe.close()
            if worker.process.pid is not None:
                worker_exited(worker.process.pid)
            if self.stopping:
                continue
            now = time.monotonic()
            self.deaths.append(now)
            while self.deaths and self.deaths[0] < now - CRASH_WINDOW:
                self.deaths.popleft()
            if len(self.deaths) >= CRASH_LIMIT:
                raise SupervisorError(
                    f"workers keep dying ({len(self.deaths)} exits within {CRASH_WINDOW:g} s, "
                    "see the errors above); giving up"
                )
            how = describe_exit(worker.process.exitcode)
            print(
                f"bff: warning: worker {worker.process.pid} {how}; starting another",
                file=sys.stderr,
                flush=True,
            )
            self._start()

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _stop_workers(self) -> None:
        """SIGTERM to every worker (uvicorn's graceful shutdown), SIGKILL if one still runs
        `STOP_MARGIN` seconds after its drain timeout.

        SIGTERM even when we got SIGINT: after Ctrl+C the workers got SIGINT from the terminal
        already, and a second SIGINT would make uvicorn drop in-flight requests.
        """
        self.stopping = True
        for worker in self.workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        deadline = time.monotonic() + self.settings.server.drain_timeout + STOP_MARGIN
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
            worker.pipe.close()
        self.workers.clear()


def _drain(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(64))
    except BlockingIOError:
        return False
