"""Mutable state of one deployment of the sample shop.

The generated `ShopData` is shared by every app in the process and must never change, yet
`POST /orders` and `POST /reviews` have to be visible to later reads. A `ShopStore` layers what
requests add on top of the shared data. One store is one "database": the runner gives all
instances of a deployment the same store (as replicas behind a load balancer would share a
database), while an app created on its own gets a fresh store, so tests never see each
other's writes.

Every method runs to completion without awaiting, so on one event loop no lock is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from services.data import (
    OrderItemRecord,
    OrderRecord,
    ReviewRecord,
    ShopData,
    iso8601,
    shop_data,
)


class ShopStore:
    """Shared read-only data plus the orders and reviews added at run time."""

    def __init__(self, data: ShopData) -> None:
        self.data = data
        # Shallow copies: the records themselves are never mutated, only the containers grow.
        self._orders: dict[int, OrderRecord] = dict(data.orders)
        self._order_ids = list(data.orders)
        self._order_ids_by_user = {uid: list(ids) for uid, ids in data.order_ids_by_user.items()}
        self._reviews_by_product = {pid: list(rs) for pid, rs in data.reviews_by_product.items()}
        self._next_review_id = 1 + sum(len(rs) for rs in data.reviews_by_product.values())

    @classmethod
    def for_seed(cls, seed: int) -> ShopStore:
        """A fresh store over the process-wide cached data for `seed`."""
        return cls(shop_data(seed))

    def order(self, order_id: int) -> OrderRecord | None:
        return self._orders.get(order_id)

    def orders_newest_first(
        self, user_id: int | None, offset: int, limit: int
    ) -> tuple[list[OrderRecord], int]:
        """One page of orders, newest (highest id) first, and the total matching count."""
        ids = self._order_ids if user_id is None else self._order_ids_by_user.get(user_id, [])
        end = len(ids) - offset
        start = max(end - limit, 0)
        page = ids[start:end] if end > 0 else []
        return [self._orders[oid] for oid in reversed(page)], len(ids)

    def add_order(self, user_id: int, lines: Iterable[tuple[int, int]]) -> OrderRecord:
        """Record a new pending order; `lines` are (productId, quantity) pairs already checked."""
        products = self.data.products
        items: list[OrderItemRecord] = [
            {"productId": pid, "quantity": qty, "unitPrice": products[pid]["price"]}
            for pid, qty in lines
        ]
        order: OrderRecord = {
            "id": self._order_ids[-1] + 1,
            "userId": user_id,
            "status": "pending",
            "createdAt": iso8601(datetime.now(UTC)),
            "items": items,
        }
        self._orders[order["id"]] = order
        self._order_ids.append(order["id"])
        self._order_ids_by_user.setdefault(user_id, []).append(order["id"])
        return order

    def reviews_of(self, product_id: int) -> list[ReviewRecord]:
        return self._reviews_by_product.get(product_id, [])

    def add_review(self, product_id: int, user_id: int, rating: int, body: str) -> ReviewRecord:
        review: ReviewRecord = {
            "id": self._next_review_id,
            "productId": product_id,
            "userId": user_id,
            "rating": rating,
            "body": body,
        }
        self._next_review_id += 1
        self._reviews_by_product.setdefault(product_id, []).append(review)
        return review


def store_or_fresh(store: ShopStore | None, seed: int) -> ShopStore:
    """The store a deployment shares, or a private one for an app created on its own."""
    return store if store is not None else ShopStore.for_seed(seed)
