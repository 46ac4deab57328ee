"""The inventory service: units available per product, in batches."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from services.common import ServiceOptions, create_service_app, items, required_query_ids
from services.store import ShopStore, store_or_fresh


def create_app(options: ServiceOptions, store: ShopStore | None = None) -> FastAPI:
    """`GET /stock?productIds=...`; unknown products are left out."""
    stock = store_or_fresh(store, options.seed).data.stock
    app = create_service_app("inventory", options)

    @app.get("/stock")
    async def batch_stock(request: Request) -> Response:
        ids = required_query_ids(request, "productIds")
        return items(stock[pid] for pid in ids if pid in stock)

    return app
