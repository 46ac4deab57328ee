"""Print `export MEMCACHED_SERVER=host:port` for a memcached that answers, starting one if needed.

Used by `scripts/test`, as `ensure_redis.py` is for Redis: a memcached already listening
(MEMCACHED_SERVER, or 127.0.0.1:11211) is used as it is; otherwise `memcached` is started on a
free loopback port and stopped when the test run's shell exits (it is added to `SERVER_PIDS`,
which `scripts/test` kills on exit). Without `memcached` it fails with a clear message, except
on CI as root, where it installs Debian's package first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

DEFAULT_SERVER = "127.0.0.1:11211"


def answers(server: str, timeout: float = 0.5) -> bool:
    """Whether a memcached at `server` (host:port) answers `version`."""
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout) as s:
            s.sendall(b"version\r\n")
            return s.recv(64).startswith(b"VERSION")
    except (OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_in_ci() -> str | None:
    """On CI (`CI` set), as root with apt: install Debian's memcached; its path, or None."""
    if not os.environ.get("CI") or shutil.which("apt-get") is None or os.geteuid() != 0:
        return None
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "memcached"]):
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=sys.stderr, check=False)
        if done.returncode != 0:
            return None
    return shutil.which("memcached")


def main() -> int:
    server = os.environ.get("MEMCACHED_SERVER", DEFAULT_SERVER)
    if answers(server):
        print(f"export MEMCACHED_SERVER={server}")
        return 0
    binary = shutil.which("memcached") or install_in_ci()
    if binary is None:
        print(
            f"scripts/test: no memcached answers at {server} and memcached is not installed; "
            "install it (e.g. apt-get install memcached) or set MEMCACHED_SERVER",
            file=sys.stderr,
        )
        return 1
    port = free_port()
    argv = [binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]  # memcached refuses to run as root without it
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    server = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not answers(server):
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"scripts/test: could not start memcached on port {port}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"export MEMCACHED_SERVER={server}")
    print(f'SERVER_PIDS="$SERVER_PIDS {process.pid}"')  # scripts/test stops them on exit
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
