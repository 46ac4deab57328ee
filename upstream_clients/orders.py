"""Client of the orders service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Order, OrderLine, Page, make


def order_record(d: Any) -> Order:
    lines = tuple(
        make(OrderLine, (int(i["productId"]), int(i["quantity"]), float(i["unitPrice"])))
        for i in d["items"]
    )
    return make(
        Order, (int(d["id"]), int(d["userId"]), str(d["status"]), str(d["createdAt"]), lines)
    )


class OrdersClient(ServiceClient):
    async def get_order(self, order_id: int) -> Order:
        """Raises `NotFound` when the order does not exist."""
        return self.parse(order_record, await self.get(f"/orders/{order_id}"))

    async def get_orders(self, ids: Iterable[int]) -> list[Order]:
        return self.parse_items(order_record, await self.get("/orders", {"ids": id_list(ids)}))

    async def list_orders(
        self, *, limit: int = 20, offset: int = 0, user_id: int | None = None
    ) -> Page[Order]:
        """Orders newest first, optionally of one user."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if user_id is not None:
            params["userId"] = user_id
        data = await self.get("/orders", params)
        items = self.parse_items(order_record, data)
        return Page(tuple(items), self.parse(lambda d: int(d["total"]), data), offset)

    async def create_order(self, user_id: int, lines: Sequence[tuple[int, int]]) -> Order:
        """Place an order of `(product_id, quantity)` lines; 422 becomes `BadUserInput`."""
        body = {
            "userId": user_id,
            "items": [{"productId": p, "quantity": q} for p, q in lines],
        }
        return self.parse(order_record, await self.post("/orders", body))
