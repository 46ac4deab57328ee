"""Client of the inventory service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Stock, make


def stock_record(d: Any) -> Stock:
    return make(Stock, (int(d["productId"]), int(d["available"])))


class InventoryClient(ServiceClient):
    async def get_stock(self, product_ids: Iterable[int]) -> list[Stock]:
        data = await self.get("/stock", {"productIds": id_list(product_ids)})
        return self.parse_items(stock_record, data)
