"""`bff demo` as a newcomer meets it: every curl line its banner prints works as printed, the
passthrough routes answer, a sample service can be stopped and slowed (partial data,
failover), and the access log is the README's JSON lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.demo.control import parse_change
from bff.errors import BadUserInput
from tests.curl_lines import curl_commands, run_curl
from tests.test_cli import Child, running_bff, wait_for

DASHBOARD = (
    "{ orders(first: 3) { nodes { id user { name } items { product { averageRating } } } } }"
)


@dataclass
class Demo:
    child: Child
    banner: str
    base: str
    admin: str
    customer: str
    stderr: Path

    def post_graphql(self, query: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base}/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=15,
            trust_env=False,
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def control(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.base}/demo/services/{path}",
            json=body,
            headers={"Authorization": f"Bearer {token or self.admin}"},
            timeout=30,
            trust_env=False,
        )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    stderr = tmp_path_factory.mktemp("demo") / "stderr"
    with running_bff("demo", "--port", "0", stderr=stderr) as child:
        lines = child.until(lambda line: "Ctrl+C" in line)
        banner = "\n".join(lines)
        base = next(w for w in banner.split() if w.endswith("/graphql")).removesuffix("/graphql")
        admin = lines[next(i for i, x in enumerate(lines) if "token for user 1" in x) + 1].strip()
        customer = lines[next(i for i, x in enumerate(lines) if "token for user 2" in x) + 1]
        wait_for(f"{base}/healthz", child.process)
        yield Demo(child, banner, base, admin, customer.strip(), stderr)


def test_every_curl_line_of_the_banner_works_as_printed(demo: Demo) -> None:
    commands = list(curl_commands(demo.banner))
    assert len(commands) >= 10
    assert f"export TOKEN={demo.admin}" in demo.banner
    answers = {}
    for command in commands:
        response = run_curl(command, {"TOKEN": demo.admin}, demo.base)
        assert response.status_code == 200, (command, response.text)
        answers[command] = response.json()
    product = next(a for c, a in answers.items() if "/api/catalog/products/1" in c)
    assert product["id"] == 1
    orders = next(a for c, a in answers.items() if "/api/orders/orders" in c)
    assert len(orders["items"]) == 2
    listing = next(a for c, a in answers.items() if c.split()[2].endswith("/demo/services"))
    assert {(i["service"], i["instance"]) for i in listing} >= {("users", 0), ("users", 1)}
    # The banner's last lines put every instance back: a later test starts from a healthy shop.
    for path in ("catalog/0", "orders/0"):
        assert demo.control(path, {}).json()["state"] == "up"


def test_passthrough_routes_keep_their_auth(demo: Demo) -> None:
    orders = f"{demo.base}/api/orders/orders"
    assert httpx.get(orders, trust_env=False).status_code == 401
    customer = {"Authorization": f"Bearer {demo.customer}"}
    assert httpx.get(orders, headers=customer, trust_env=False).status_code == 403
    assert httpx.get(f"{demo.base}/api/nothing/x", trust_env=False).status_code == 404


def test_a_stopped_service_gives_partial_data_and_users_fail_over(demo: Demo) -> None:
    assert "errors" not in demo.post_graphql(DASHBOARD)
    down = demo.control("reviews/0", {"state": "down"})
    assert down.json()["state"] == "down"
    try:
        body = demo.post_graphql(DASHBOARD)
        nodes = body["data"]["orders"]["nodes"]
        assert nodes and all(node["user"]["name"] for node in nodes)  # the rest is there
        assert {e["extensions"]["code"] for e in body["errors"]} == {"UPSTREAM_UNAVAILABLE"}
        assert all(e["path"][-1] == "averageRating" for e in body["errors"])
    finally:
        assert demo.control("reviews/0", {}).json()["state"] == "up"
    assert demo.control("users/0", {"state": "down"}).status_code == 200
    try:
        for _ in range(3):  # whichever instance the balancer picks, the answer is whole
            body = demo.post_graphql("{ users(ids: [1, 2, 3, 4, 5]) { id name } }")
            assert "errors" not in body, body
            assert len(body["data"]["users"]) == 5
    finally:
        demo.control("users/0", {})
    deadline = time.monotonic() + 20
    while "errors" in demo.post_graphql(DASHBOARD):  # the pool takes reviews back
        assert time.monotonic() < deadline, "reviews did not come back"
        time.sleep(0.2)


def test_a_slowed_service_is_slower(demo: Demo) -> None:
    query = "{ product(id: 1) { stock } }"
    assert demo.control("inventory/0", {"latency": "300ms"}).json()["latency_ms"] == 300
    try:
        started = time.monotonic()
        assert demo.post_graphql(query)["data"]["product"]["stock"] is not None
        assert time.monotonic() - started >= 0.3
    finally:
        assert demo.control("inventory/0", {}).json()["latency_ms"] == 0


def test_the_control_is_for_admins_and_checks_its_input(demo: Demo) -> None:
    anonymous = httpx.get(f"{demo.base}/demo/services", trust_env=False)
    assert anonymous.status_code == 401
    assert demo.control("reviews/0", {"state": "down"}, token=demo.customer).status_code == 403
    assert demo.control("nothing/0", {}).status_code == 404
    assert demo.control("users/7", {}).status_code == 404
    bad = demo.control("reviews/0", {"state": "sideways"})
    assert bad.status_code == 400 and "state" in bad.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[]", "object"),
        (b"{", "JSON"),
        (b'{"latency": "fast"}', "latency"),
        (b'{"latency": "2m"}', "latency"),
        (b'{"failure_rate": 2}', "failure_rate"),
        (b'{"failure_rate": true}', "failure_rate"),
        (b'{"colour": "red"}', "colour"),
    ],
)
def test_bad_changes_name_their_field(body: bytes, field: str) -> None:
    with pytest.raises(BadUserInput, match=field):
        parse_change(body)


def test_changes_default_to_healthy() -> None:
    assert parse_change(b"") == {"up": True, "latency": 0.0, "failure_rate": 0.0}
    assert parse_change(b'{"state": "down"}')["up"] is False
    assert parse_change(b'{"latency": "250ms", "failure_rate": 0.5}') == {
        "up": True,
        "latency": 0.25,
        "failure_rate": 0.5,
    }


def test_the_access_log_is_json_lines(demo: Demo) -> None:
    httpx.get(f"{demo.base}/healthz", trust_env=False)
    deadline = time.monotonic() + 10
    while '"/healthz"' not in demo.stderr.read_text():
        assert time.monotonic() < deadline, demo.stderr.read_text()
        time.sleep(0.05)
    access = [line for line in demo.stderr.read_text().splitlines() if '"method"' in line]
    assert access
    for line in access:
        assert not line.startswith("INFO"), line
        record = json.loads(line)
        assert {"time", "method", "path", "status", "duration_ms", "request_id"} <= set(record)
