"""Client of the catalog service."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Items, Listing, Page, Product

PRODUCT = msgspec.json.Decoder(Product)
PRODUCTS = msgspec.json.Decoder(Items[Product])
LISTING = msgspec.json.Decoder(Listing[Product])


class CatalogClient(ServiceClient):
    async def get_product(self, product_id: int) -> Product:
        """Raises `NotFound` when the product does not exist."""
        return await self.get_decoded(PRODUCT, f"/products/{product_id}")

    async def get_products(self, ids: Iterable[int]) -> tuple[Product, ...]:
        return (await self.get_decoded(PRODUCTS, "/products", {"ids": id_list(ids)})).items

    async def list_products(
        self, *, category: str | None = None, limit: int = 20, offset: int = 0
    ) -> Page[Product]:
        """Products by id ascending, optionally of one category."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if category is not None:
            params["category"] = category
        listing = await self.get_decoded(LISTING, "/products", params)
        return Page(listing.items, listing.total, offset)
