"""The shop's REST contract (SPEC section 2) as OpenAPI documents, one per service.

`shop/bff.yaml` serves them with `graph: none`, joined by links so that the Dashboard
(`DASHBOARD`) makes the same 5 upstream calls as the code-first shop. The tests and the
benchmark both use it through `shop_sources`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

SHOP_DIR = Path(__file__).resolve().parent / "shop"
SHOP_CONFIG = SHOP_DIR / "bff.yaml"

DASHBOARD = """query Dashboard($limit: Int) { orders(limit: $limit) { items { id status
  user { id name }
  items { quantity unitPrice product { id name price stock { available }
  reviews { rating } } } } } }"""
DASHBOARD_BODY = orjson.dumps({"query": DASHBOARD, "variables": {"limit": 20}})  # as POSTed


def shop_sources(urls: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """`graph`, `sources` and `links` of `shop/bff.yaml`, document paths made absolute."""
    config = yaml.safe_load(SHOP_CONFIG.read_text(encoding="utf-8"))
    for source in config["sources"]:
        source["openapi"] = str(SHOP_DIR / source["openapi"])
    return {key: config[key] for key in ("graph", "sources", "links")}
