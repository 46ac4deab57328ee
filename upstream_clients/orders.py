"""Client of the orders service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Items, Listing, Order, Page

ORDER = msgspec.json.Decoder(Order)
ORDERS = msgspec.json.Decoder(Items[Order])
LISTING = msgspec.json.Decoder(Listing[Order])


class OrdersClient(ServiceClient):
    async def get_order(self, order_id: int) -> Order:
        """Raises `NotFound` when the order does not exist."""
        return await self.get_decoded(ORDER, f"/orders/{order_id}")

    async def get_orders(self, ids: Iterable[int]) -> tuple[Order, ...]:
        return (await self.get_decoded(ORDERS, "/orders", {"ids": id_list(ids)})).items

    async def list_orders(
        self, *, limit: int = 20, offset: int = 0, user_id: int | None = None
    ) -> Page[Order]:
        """Orders newest first, optionally of one user."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if user_id is not None:
            params["userId"] = user_id
        listing = await self.get_decoded(LISTING, "/orders", params)
        return Page(listing.items, listing.total, offset)

    async def create_order(self, user_id: int, lines: Sequence[tuple[int, int]]) -> Order:
        """Place an order of `(product_id, quantity)` lines; 422 becomes `BadUserInput`."""
        body = {
            "userId": user_id,
            "items": [{"productId": p, "quantity": q} for p, q in lines],
        }
        return await self.post_decoded(ORDER, "/orders", body)
