"""The reviews service: all reviews of a batch of products, and adding one."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from services.common import (
    ServiceOptions,
    create_service_app,
    int_field,
    invalid,
    items,
    json_object,
    json_response,
    required_query_ids,
    str_field,
)
from services.store import ShopStore, store_or_fresh


def create_app(options: ServiceOptions, store: ShopStore | None = None) -> FastAPI:
    """`GET /reviews?productIds=...` and `POST /reviews`."""
    shop = store_or_fresh(store, options.seed)
    data = shop.data
    app = create_service_app("reviews", options)

    @app.get("/reviews")
    async def batch_reviews(request: Request) -> Response:
        ids = required_query_ids(request, "productIds")
        return items(review for pid in ids for review in shop.reviews_of(pid))

    @app.post("/reviews")
    async def add_review(request: Request) -> Response:
        body = await json_object(request)
        product_id = int_field(body, "productId")
        if product_id not in data.products:
            raise invalid(f"unknown product {product_id}")
        user_id = int_field(body, "userId")
        if user_id not in data.users:
            raise invalid(f"unknown user {user_id}")
        rating = int_field(body, "rating", 1, 5)
        text = str_field(body, "body")
        review = shop.add_review(product_id, user_id, rating, text)
        return json_response(review, status_code=201)

    return app
