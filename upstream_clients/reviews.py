"""Client of the reviews service."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bff.graph.client import ServiceClient, id_list
from upstream_clients.records import Items, Review

REVIEW = msgspec.json.Decoder(Review)
REVIEWS = msgspec.json.Decoder(Items[Review])


class ReviewsClient(ServiceClient):
    async def reviews_of_products(self, product_ids: Iterable[int]) -> tuple[Review, ...]:
        """Every review of the given products."""
        params = {"productIds": id_list(product_ids)}
        return (await self.get_decoded(REVIEWS, "/reviews", params)).items

    async def create_review(self, product_id: int, user_id: int, rating: int, body: str) -> Review:
        payload = {"productId": product_id, "userId": user_id, "rating": rating, "body": body}
        return await self.post_decoded(REVIEW, "/reviews", payload)
