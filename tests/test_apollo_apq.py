"""The Apollo Client's persisted-query link (the real npm package, run by node) against the
gateway: it must work unchanged. The packages are pinned by tests/apollo/package-lock.json and
installed with `npm ci` on first use; without node and npm this test fails, it never skips."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from services import RunningServices
from tests.support import gateway_settings, running_gateway

HERE = Path(__file__).resolve().parent / "apollo"
QUERY = "query Apollo{} {{ product(id: 3) {{ id name }} }}"


def node_modules() -> None:
    """`npm ci` once per checkout (the lock file pins every package)."""
    if (HERE / "node_modules" / "@apollo" / "client" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the Apollo Client test (install Node.js 20+)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE, check=True, timeout=300,
    )  # fmt: skip


def test_apollo_clients_persisted_query_link_works_unchanged(shop: RunningServices) -> None:
    node_modules()
    query = QUERY.format(uuid.uuid4().hex[:8])  # a fresh hash: not registered yet
    with running_gateway(gateway_settings(shop.urls)) as url:
        run = subprocess.run(
            ["node", str(HERE / "apq.mjs"), f"{url}/graphql", query],
            capture_output=True, text=True, timeout=60, cwd=HERE,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    register, by_hash, by_get = json.loads(run.stdout)
    product = register["data"]["product"]
    assert product["id"] == "3"
    # first use: the hash alone (PERSISTED_QUERY_NOT_FOUND), then the query with its hash
    assert [
        (r["method"], r["hasQuery"], r["hasHash"], r["status"]) for r in register["requests"]
    ] == [
        ("POST", False, True, 400),
        ("POST", True, True, 200),
    ]
    # a fresh client: the hash alone is enough now, by POST and by GET
    assert by_hash["data"]["product"] == product
    assert [(r["method"], r["hasQuery"], r["status"]) for r in by_hash["requests"]] == [
        ("POST", False, 200)
    ]
    assert by_get["data"]["product"] == product
    assert [(r["method"], r["hasQuery"], r["status"]) for r in by_get["requests"]] == [
        ("GET", False, 200)
    ]
