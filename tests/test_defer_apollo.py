"""Apollo Client 4 (the real npm package, run by node) reading a deferred query from the
gateway: it asks for multipart itself, emits the first part as streaming data while the slow
upstream behind `@defer` is still answering, then the complete data, equal to the one-piece
answer. The packages are installed as for tests/test_apollo_apq.py; no node: it fails."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

from services import ServiceOptions, ServiceSpec
from tests.support import gateway_settings, running_gateway, running_shop
from tests.test_apollo_apq import HERE, node_modules

SLOW = 1.0  # seconds the reviews service takes
QUERY = """query Ratings { products(first: 4) { nodes { id name
  ... @defer(label: "rating") { averageRating reviewCount } } } }"""


def without_typenames(value: Any) -> Any:
    """Apollo Client adds `__typename` to every selection for its cache."""
    if isinstance(value, dict):
        return {k: without_typenames(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        return [without_typenames(v) for v in value]
    return value


def test_apollo_client_gets_the_first_part_then_the_complete_data() -> None:
    node_modules()
    with (
        running_shop(ServiceSpec("reviews", ServiceOptions(latency=SLOW))) as shop,
        running_gateway(gateway_settings(shop.urls)) as url,
    ):
        whole = httpx.post(f"{url}/graphql", json={"query": QUERY}, trust_env=False).json()
        run = subprocess.run(
            ["node", str(HERE / "defer.mjs"), f"{url}/graphql", QUERY],
            capture_output=True, text=True, timeout=60, cwd=HERE,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["accept"].startswith("multipart/mixed;deferSpec=20220824")
    first, *_, last = seen["emitted"]
    assert [e["error"] for e in seen["emitted"]] == [None] * len(seen["emitted"])
    assert first["dataState"] == "streaming"
    nodes = without_typenames(first["data"])["products"]["nodes"]
    assert nodes == [{"id": n["id"], "name": n["name"]} for n in whole["data"]["products"]["nodes"]]
    assert last["dataState"] == "complete"
    assert without_typenames(last["data"]) == whole["data"]
    # the first part came while reviews was still answering, well before the rest
    assert first["ms"] < last["ms"] - SLOW * 1000 / 2, seen["emitted"]
