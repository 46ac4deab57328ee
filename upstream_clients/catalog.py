"""Client of the catalog service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Page, Product, make


def product_record(d: Any) -> Product:
    fields = (
        int(d["id"]),
        str(d["name"]),
        float(d["price"]),
        str(d["currency"]),
        str(d["category"]),
    )
    return make(Product, fields)


class CatalogClient(ServiceClient):
    async def get_product(self, product_id: int) -> Product:
        """Raises `NotFound` when the product does not exist."""
        return self.parse(product_record, await self.get(f"/products/{product_id}"))

    async def get_products(self, ids: Iterable[int]) -> list[Product]:
        return self.parse_items(product_record, await self.get("/products", {"ids": id_list(ids)}))

    async def list_products(
        self, *, category: str | None = None, limit: int = 20, offset: int = 0
    ) -> Page[Product]:
        """Products by id ascending, optionally of one category."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if category is not None:
            params["category"] = category
        data = await self.get("/products", params)
        items = self.parse_items(product_record, data)
        return Page(tuple(items), self.parse(lambda d: int(d["total"]), data), offset)
