"""Child processes of a benchmark run: pinned to a core, bounded in time, always killed.

A benchmark that leaves a gateway listening or a service spinning poisons the next run and the
machine, so every child:

- gets a session (process group) of its own, so its whole tree can be signalled at once, and so
  a Ctrl+C in the terminal reaches only the runner, which then stops the children in order;
- gets a parent-death signal (Linux `PR_SET_PDEATHSIG`), so even a runner killed with SIGKILL
  takes its children with it;
- writes stdout and stderr to a log file, never to a pipe (a full pipe would stall it, and a
  file needs no reader thread), and the log's tail is shown when it fails to start;
- is waited for with a deadline, and stopped with SIGTERM, then SIGKILL.

The readers of `/proc` (peak RSS, CPU time) are here too: they describe a child process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL = 2000  # characters of a child's log shown when it fails

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


class ChildFailed(RuntimeError):
    """A child did not start, or died: the message carries the tail of its log."""


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the runner dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class Pinning:
    """Which CPU each role runs on; `None` everywhere when pinning is not possible."""

    target_core: int | None  # the measured server (gateway, floor or reference)
    load_core: int | None  # sample services, load generator and this runner
    reason: str  # why pinning is on or off, for the report
    cores: tuple[int, ...] = ()  # every core the run may use (what "unpinned" spreads over)

    @property
    def enabled(self) -> bool:
        return self.target_core is not None

    def prefix(self, core: int | None) -> list[str]:
        """Command prefix that runs a program on `core` (empty when not pinning)."""
        return [] if core is None else ["taskset", "-c", str(core)]


def detect_pinning() -> Pinning:
    """Measured server on the first allowed core, everything else on the second, via taskset."""
    cores = tuple(sorted(os.sched_getaffinity(0)))
    if shutil.which("taskset") is None:
        return Pinning(None, None, "taskset not found: processes are not pinned", cores)
    if len(cores) < 2:
        reason = f"only {len(cores)} usable core: processes are not pinned"
        return Pinning(None, None, reason, cores)
    reason = f"target on core {cores[0]}, the rest on core {cores[1]}"
    return Pinning(cores[0], cores[1], reason, cores)


@contextlib.contextmanager
def unpinned(pinning: Pinning) -> Iterator[Pinning]:
    """No pinning for what starts inside: the runner (whose affinity every child inherits)
    spreads over all of the run's cores again, and is put back on the load core afterwards."""
    cores = set(pinning.cores) or os.sched_getaffinity(0)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    reason = f"unpinned: every process may run on cores {_cores(cores)}"
    try:
        yield Pinning(None, None, reason, pinning.cores)
    finally:
        os.sched_setaffinity(0, before)


def _cores(cores: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cores))


class Child:
    """One started process (after `taskset` execs, its pid is the program's own)."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL:]

    def failed(self, what: str) -> ChildFailed:
        status = "" if self.alive() else f" (exit status {self.popen.returncode})"
        tail = self.log_tail().rstrip() or "(empty log)"
        return ChildFailed(f"{self.name}: {what}{status}; its output:\n{tail}")

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float) -> list[str]:
        """The log's lines once one satisfies `predicate`; ChildFailed on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_path.read_text(errors="replace").splitlines()
            if any(predicate(line) for line in lines):
                return lines
            if not self.alive():
                raise self.failed("exited while starting")
            if time.monotonic() > deadline:
                raise self.failed(f"not ready after {timeout:.0f} s")
            time.sleep(0.05)

    def wait_http_ok(self, url: str, timeout: float) -> None:
        """Poll `url` until it answers 200; ChildFailed on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _LOOPBACK.open(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if not self.alive():
                raise self.failed("exited while starting")
            if time.monotonic() > deadline:
                raise self.failed(f"{url} did not answer 200 within {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it after `STOP_GRACE` seconds."""
        if self.popen.returncode is not None and not _group_exists(self.pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # stragglers of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=STOP_GRACE)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Children:
    """Every child of the run; leaving the `with` block stops them all, last started first."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self._children: list[Child] = []

    def start(self, name: str, argv: Sequence[str]) -> Child:
        child = Child(name, argv, self.log_dir / f"{name}.log", self.cwd)
        self._children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self._children:
            self._children.remove(child)

    def stop_all(self) -> None:
        while self._children:
            self._children.pop().stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def run_bounded(argv: Sequence[str], timeout: float) -> tuple[str, str]:
    """Run a short-lived child (the load generator) to completion; its stdout and stderr.

    Same session and parent-death rules as the servers, so an interrupted run kills it too.
    """
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        out, err = popen.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        raise
    if popen.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {popen.returncode}: {err.strip()[-LOG_TAIL:]}")
    return out, err


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl+C (and SIGINT too, even when the runner was started
    with it ignored, as background jobs are), so `finally` blocks stop the children."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {
        sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that cannot be given port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with _LOOPBACK.open(url, timeout=timeout) as response:
        return bytes(response.read())


def http_post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _LOOPBACK.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


# --- /proc readers -------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (those of every thread), as far as /proc shows them."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (uvicorn workers, if any), as far as /proc shows them."""
    found = [pid]
    index = 0
    while index < len(found):
        found.extend(children_of(found[index]))
        index += 1
    return found


def cmdline(pid: int) -> str:
    """The command line of `pid`, arguments joined by spaces ("" once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def worker_pids(pid: int) -> list[int]:
    """The processes of a server that answer requests: its children when it has any (the
    supervisor of `bff serve --workers N` has one per worker), leaving out multiprocessing's
    resource tracker; else the server itself."""
    workers = [c for c in children_of(pid) if "resource_tracker" not in cmdline(c)]
    return workers or [pid]


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (the peak resident set) of one process in MB (10^6 bytes), None if unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return None


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the given processes so far (their threads included)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / _CLOCK_TICKS


def core_busy_seconds() -> dict[int, float]:
    """Time each CPU spent running processes, or stolen by the hypervisor, since boot.

    Interrupt time is left out: the kernel may account loopback traffic there rather than to
    the process that caused it, and it is our traffic.
    """
    busy: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(v) for v in values[:8])
        busy[int(name[3:])] = (user + nice + system + steal) / _CLOCK_TICKS
    return busy


def own_cpu_seconds() -> float:
    """CPU time of this process and of its children already waited for (the load generator)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + reaped.ru_utime + reaped.ru_stime
