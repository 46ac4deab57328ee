"""The orders service: orders by id, in a batch, paged newest first, and placing one."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

from services.common import (
    ServiceOptions,
    create_service_app,
    int_field,
    invalid,
    items,
    json_object,
    json_response,
    not_found,
    page,
    page_params,
    parse_id,
    query_ids,
)
from services.data import ShopData
from services.store import ShopStore, store_or_fresh

MAX_ORDER_LINES = 100
MAX_QUANTITY = 100


def create_app(options: ServiceOptions, store: ShopStore | None = None) -> FastAPI:
    """`GET /orders/{id}`, `GET /orders` (by `ids`, else paged by `userId`) and `POST /orders`."""
    shop = store_or_fresh(store, options.seed)
    app = create_service_app("orders", options)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str) -> Response:
        order = shop.order(parse_id(order_id))
        if order is None:
            raise not_found(f"order {order_id} not found")
        return json_response(order)

    @app.get("/orders")
    async def list_orders(request: Request) -> Response:
        # `ids` selects a batch and wins over the paging parameters.
        ids = query_ids(request, "ids")
        if ids is not None:
            return items(order for oid in ids if (order := shop.order(oid)) is not None)
        raw_user = request.query_params.get("userId")
        user_id = parse_id(raw_user, "userId") if raw_user else None
        offset, limit = page_params(request)
        return page(*shop.orders_newest_first(user_id, offset, limit))

    @app.post("/orders")
    async def place_order(request: Request) -> Response:
        body = await json_object(request)
        user_id = int_field(body, "userId")
        if user_id not in shop.data.users:
            raise invalid(f"unknown user {user_id}")
        lines = _order_lines(shop.data, body.get("items"))
        return json_response(shop.add_order(user_id, lines), status_code=201)

    return app


def _order_lines(data: ShopData, raw_items: Any) -> list[tuple[int, int]]:
    """Validated (productId, quantity) pairs, or 422 naming the first problem."""
    if not isinstance(raw_items, list) or not raw_items:
        raise invalid("items must be a non-empty list")
    if len(raw_items) > MAX_ORDER_LINES:
        raise invalid(f"items must have at most {MAX_ORDER_LINES} lines")
    lines = []
    for item in raw_items:
        if not isinstance(item, dict):
            raise invalid("each item must be an object with productId and quantity")
        product_id = int_field(item, "productId")
        if product_id not in data.products:
            raise invalid(f"unknown product {product_id}")
        lines.append((product_id, int_field(item, "quantity", 1, MAX_QUANTITY)))
    return lines
