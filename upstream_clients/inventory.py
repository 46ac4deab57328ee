"""Client of the inventory service."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Items, Stock

STOCK = msgspec.json.Decoder(Items[Stock])


class InventoryClient(ServiceClient):
    async def get_stock(self, product_ids: Iterable[int]) -> tuple[Stock, ...]:
        return (await self.get_decoded(STOCK, "/stock", {"productIds": id_list(product_ids)})).items
