"""Client of the reviews service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Review, make


def review_record(d: Any) -> Review:
    fields = (int(d["id"]), int(d["productId"]), int(d["userId"]), int(d["rating"]), str(d["body"]))
    return make(Review, fields)


class ReviewsClient(ServiceClient):
    async def reviews_of_products(self, product_ids: Iterable[int]) -> list[Review]:
        """Every review of the given products."""
        data = await self.get("/reviews", {"productIds": id_list(product_ids)})
        return self.parse_items(review_record, data)

    async def create_review(self, product_id: int, user_id: int, rating: int, body: str) -> Review:
        payload = {"productId": product_id, "userId": user_id, "rating": rating, "body": body}
        return self.parse(review_record, await self.post("/reviews", payload))
