"""Print `export REDIS_URL=...` for a Redis server that answers, starting one if needed.

Used by `scripts/test`: a Redis already listening (REDIS_URL, or 127.0.0.1:6379) is used as
it is; otherwise `redis-server` is started on a free loopback port with persistence off and
stopped when the test run's shell exits (it is added to `SERVER_PIDS`, which `scripts/test`
kills on exit). Without `redis-server` it fails with a clear message.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis server at `url` answers PING with PONG."""
    parts = urlparse(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout
        ) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    url = os.environ.get("REDIS_URL", DEFAULT_URL)
    if answers(url):
        print(f"export REDIS_URL={url}")
        return 0
    server = shutil.which("redis-server")
    if server is None:
        print(
            f"scripts/test: no Redis answers at {url} and redis-server is not installed; "
            "install Redis (e.g. apt-get install redis-server) or set REDIS_URL",
            file=sys.stderr,
        )
        return 1
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"scripts/test: could not start redis-server on port {port}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"export REDIS_URL={url}")
    print(f'SERVER_PIDS="$SERVER_PIDS {process.pid}"')  # scripts/test stops them on exit
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
