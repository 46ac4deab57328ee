"""The `bff` command, run as a real subprocess: schema, check-config, serve, demo, services.

Long-running commands are read line by line until they announce themselves, with a deadline,
and are always stopped (then killed if they linger) in `finally`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from graphql import build_schema, print_schema

from bff.cli import build_parser
from bff.config.loader import NOT_YET_BUILT
from services import RunningServices
from tests.support import SECRET, SHOP_SCHEMA

BFF = [sys.executable, "-m", "bff.cli"]
DEADLINE = 20.0
ROOT_QUERY_FIELDS = {"me", "user", "users", "product", "products", "order", "orders"}
ROOT_MUTATION_FIELDS = {"placeOrder", "addReview"}  # login, refreshToken, logout come later


def run_bff(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BFF, *args], capture_output=True, text=True, timeout=timeout, env=child_env()
    )


def child_env() -> dict[str, str]:
    """The test's environment without `BFF_*` overrides that would change the config read."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}


EVERY_UPSTREAM = {
    name: [f"http://127.0.0.1:{9101 + i}"]
    for i, name in enumerate(("users", "catalog", "orders", "reviews", "inventory", "auth"))
}


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(data)), encoding="utf-8")
    return path


def valid_config(urls: Mapping[str, Sequence[str]], port: int = 8000) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "upstreams": {
            name: {"instances": [{"url": u} for u in instance_urls], "timeout": {"total": "2s"}}
            for name, instance_urls in urls.items()
        },
        "auth": {"jwt": {"algorithm": "HS256", "secret": SECRET}},
    }


def free_port() -> int:
    """A port free right now (a small race is acceptable: `bff serve` takes a fixed port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A running `bff` and its stdout lines, read by a thread so a test can wait with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Terminate (kill if it lingers), then drain and close stdout."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._thread.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, predicate: Any, deadline: float = DEADLINE) -> list[str]:
        """Every line so far, once one satisfies `predicate`; fails at the deadline or EOF."""
        end = time.monotonic() + deadline
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no expected line within {deadline} s; got {self.seen}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the process ended (rc={self.process.poll()}); got {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return list(self.seen)


@contextmanager
def running_bff(*args: str, stderr: Path) -> Iterator[Child]:
    """`bff ARGS` in the background, always stopped on the way out."""
    with stderr.open("w", encoding="utf-8") as err:
        process = subprocess.Popen(
            [*BFF, *args], stdout=subprocess.PIPE, stderr=err, text=True, env=child_env()
        )
        child = Child(process)
        try:
            yield child
        finally:
            child.stop()


def wait_for(
    url: str, process: subprocess.Popen[str], deadline: float = DEADLINE
) -> httpx.Response:
    """GET `url` until it answers, while `process` lives."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"the process ended with {process.returncode} before {url} answered")
        try:
            return httpx.get(url, timeout=2, trust_env=False)
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"{url} did not answer within {deadline} s")


def graphiql_config(page: str) -> dict[str, object]:
    """The JSON config object the GraphiQL page embeds (`var config = {...};`)."""
    match = re.search(r"var config = (\{.*?\});\n", page)
    assert match is not None, page
    config: dict[str, object] = json.loads(match.group(1))
    return config


# --- the console script -------------------------------------------------------------------------


def test_the_console_script_is_bff_cli_main() -> None:
    (script,) = entry_points(group="console_scripts", name="bff")
    assert script.value == "bff.cli:main"


def test_version_prints_the_installed_version() -> None:
    result = run_bff("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"bff {metadata.version('bff-gateway')}"


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def test_every_command_and_option_has_help_text() -> None:
    missing = [
        f"{parser.prog} {action.dest}"
        for parser in parsers(build_parser())
        for action in parser._actions
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == []
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest for c in commands._choices_actions} >= {
        "demo", "serve", "services", "check-config", "schema", "usage",
    }  # fmt: skip
    assert all(c.help for c in commands._choices_actions)


# --- bff schema ---------------------------------------------------------------------------------


def test_schema_prints_the_sdl() -> None:
    result = run_bff("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == print_schema(SHOP_SCHEMA).strip()
    printed = build_schema(result.stdout)
    assert printed.query_type is not None and printed.mutation_type is not None
    assert set(printed.query_type.fields) >= ROOT_QUERY_FIELDS
    assert set(printed.mutation_type.fields) >= ROOT_MUTATION_FIELDS
    assert set(printed.query_type.fields["order"].args) == {"id"}
    assert set(printed.query_type.fields["products"].args) == {"category", "first", "after"}


# --- bff check-config ---------------------------------------------------------------------------


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bff.yaml", valid_config(EVERY_UPSTREAM))
    result = run_bff("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_config_warns_on_every_key_not_active_yet(tmp_path: Path) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["routes"] = [{"name": "catalog", "upstream": "catalog"}]
    config = write_config(tmp_path / "bff.yaml", data)
    result = run_bff("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"bff: warning: {path}: {message}; this section has no effect"
        for path, message in NOT_YET_BUILT
    ]
    assert result.stdout.startswith(f"{config}: ok")


@pytest.mark.parametrize(
    ("workers", "store", "warned"), [(3, "memory", True), (1, "memory", False)]
)
def test_check_config_warns_when_workers_do_not_share_tokens(
    tmp_path: Path, workers: int, store: str, warned: bool
) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["server"]["workers"] = workers
    data["auth"]["store"] = store
    result = run_bff("check-config", str(write_config(tmp_path / "bff.yaml", data)))
    assert result.returncode == 0, result.stderr
    assert ("auth.store: memory" in result.stderr) is warned, result.stderr
    if warned:
        assert "refresh" in result.stderr and "auth.store: redis" in result.stderr


def test_check_config_is_quiet_when_workers_share_a_redis_store(tmp_path: Path) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["server"]["workers"] = 3
    data["auth"]["store"] = "redis"
    data["redis"] = {"url": "redis://127.0.0.1:6379/0"}
    result = run_bff("check-config", str(write_config(tmp_path / "bff.yaml", data)))
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_serve_with_workers_warns_about_the_memory_store(
    tmp_path: Path, shop: RunningServices
) -> None:
    port = free_port()
    config = write_config(tmp_path / "bff.yaml", valid_config(shop.urls, port))
    stderr = tmp_path / "stderr"
    with running_bff("serve", "--config", str(config), "--workers", "2", stderr=stderr) as child:
        wait_for(f"http://127.0.0.1:{port}/healthz", child.process)
        end = time.monotonic() + DEADLINE  # announced once every worker serves
        while "serving on" not in stderr.read_text() and time.monotonic() < end:
            time.sleep(0.05)
        lines = stderr.read_text().splitlines()
    warning = next(i for i, line in enumerate(lines) if "2 workers with auth.store: memory" in line)
    assert "serving on" in lines[warning + 1]  # at start, beside the address it serves


def test_serve_without_a_config_says_what_to_give(tmp_path: Path) -> None:
    result = run_bff("serve")
    assert result.returncode == 2
    assert "--config FILE" in result.stderr and "BFF_CONFIG" in result.stderr
    assert "Traceback" not in result.stderr
    help_text = run_bff("serve", "-h").stdout
    assert "else defaults" not in help_text and "required unless" in help_text


def test_check_config_refuses_a_short_hs256_secret(tmp_path: Path) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["auth"]["jwt"]["secret"] = "x"
    config = write_config(tmp_path / "bff.yaml", data)
    result = run_bff("check-config", str(config))
    assert result.returncode != 0
    assert "auth.jwt.secret: too short (1 byte); HS256 needs at least 32 bytes" in result.stderr


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["upstreams"]["users"]["instances"][0]["url"] = "not a url"
    config = write_config(tmp_path / "bff.yaml", data)
    result = run_bff("check-config", str(config))
    assert result.returncode != 0
    assert "upstreams.users.instances[0].url" in result.stderr
    assert "ok" not in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_check_config_names_an_unknown_key(tmp_path: Path) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["upstreams"]["users"]["timeout"]["totl"] = "1s"
    config = write_config(tmp_path / "bff.yaml", data)
    result = run_bff("check-config", str(config))
    assert result.returncode != 0
    assert "upstreams.users.timeout.totl" in result.stderr


def test_check_config_refuses_a_config_missing_an_upstream_the_schema_calls(
    tmp_path: Path,
) -> None:
    data = valid_config(EVERY_UPSTREAM)
    del data["upstreams"]["catalog"], data["upstreams"]["reviews"]
    config = write_config(tmp_path / "bff.yaml", data)
    result = run_bff("check-config", str(config))
    assert result.returncode != 0
    assert "upstreams: missing catalog, reviews" in result.stderr
    serve = run_bff("serve", "--config", str(config))
    assert serve.returncode == 2
    assert "upstreams: missing catalog, reviews" in serve.stderr
    assert "Traceback" not in serve.stderr


# --- bff serve ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_serve_refuses_a_worker_count_below_one(tmp_path: Path, workers: str) -> None:
    config = write_config(tmp_path / "bff.yaml", valid_config(EVERY_UPSTREAM))
    result = run_bff("serve", "--config", str(config), "--workers", workers)
    assert result.returncode == 2
    assert "--workers" in result.stderr


def test_serve_refuses_an_invalid_config_with_exit_2(tmp_path: Path) -> None:
    data = valid_config(EVERY_UPSTREAM)
    data["upstreams"]["users"]["instances"][0]["url"] = "ftp://nowhere"
    config = write_config(tmp_path / "bff.yaml", data)
    result = run_bff("serve", "--config", str(config))
    assert result.returncode == 2
    assert "upstreams.users.instances[0].url" in result.stderr


def test_serve_answers_with_a_valid_config(tmp_path: Path, shop: RunningServices) -> None:
    port = free_port()
    config = write_config(tmp_path / "bff.yaml", valid_config(shop.urls, port))
    with running_bff("serve", "--config", str(config), stderr=tmp_path / "stderr") as child:
        base = f"http://127.0.0.1:{port}"
        health = wait_for(f"{base}/healthz", child.process)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz", timeout=5, trust_env=False).status_code == 200
        answer = httpx.post(
            f"{base}/graphql", json={"query": "{ product(id: 1) { id } }"}, trust_env=False
        )
        assert answer.json() == {"data": {"product": {"id": "1"}}, "extensions": {"cost": 2}}


# --- bff demo -----------------------------------------------------------------------------------


def test_demo_prints_a_url_and_a_token_that_work(tmp_path: Path) -> None:
    with running_bff("demo", "--port", "0", stderr=tmp_path / "stderr") as child:
        banner = child.until(lambda line: "Ctrl+C" in line)
        urls = [w for line in banner for w in line.split() if w.startswith("http")]
        graphiql = next(u for u in urls if u.endswith("/graphql"))
        assert not graphiql.endswith(":0/graphql")
        token_line = next(i for i, line in enumerate(banner) if "token for user 1" in line)
        token = banner[token_line + 1].strip()
        assert token.count(".") == 2

        # The banner says the demo is running: the URL must take connections from now on.
        try:
            httpx.get(graphiql.removesuffix("/graphql") + "/healthz", trust_env=False)
            refused_after_banner = False
        except httpx.ConnectError:
            refused_after_banner = True

        health = wait_for(graphiql.removesuffix("/graphql") + "/healthz", child.process)
        assert health.status_code == 200
        page = httpx.get(graphiql, headers={"Accept": "text/html"}, trust_env=False)
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
        config = graphiql_config(page.text)
        assert "\nquery Dashboard {" in str(config["defaultQuery"])
        assert json.loads(str(config["defaultHeaders"])) == {"Authorization": f"Bearer {token}"}
        response = httpx.post(
            graphiql,
            json={"query": "{ me { id } orders(first: 2) { nodes { id } } }"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            trust_env=False,
        )
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, body
        assert body["data"]["me"] == {"id": "1"}
        assert len(body["data"]["orders"]["nodes"]) == 2
        assert not refused_after_banner, "the banner was printed before the port listened"


def test_demo_on_a_taken_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_bff("demo", "--port", str(port))
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "Traceback" not in result.stderr


# --- bff services -------------------------------------------------------------------------------


def test_services_prints_urls_then_ready(tmp_path: Path) -> None:
    with running_bff("services", "--port-base", "0", "users", stderr=tmp_path / "stderr") as child:
        lines = child.until(lambda line: line == "ready")
        assert lines[-1] == "ready"
        announced = [line.split() for line in lines[:-1]]
        assert [name for name, _ in announced] == ["users"]
        url = announced[0][1]
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{url}/health", timeout=5, trust_env=False)
        assert health.json() == {"status": "ok"}
        user = httpx.get(f"{url}/users/1", timeout=5, trust_env=False)
        assert user.status_code == 200
        assert user.json()["id"] == 1
