"""The catalog service: products by id, in a batch, or paged by category."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from services.common import (
    ServiceOptions,
    create_service_app,
    items,
    json_response,
    not_found,
    page,
    page_params,
    parse_id,
    query_ids,
)
from services.store import ShopStore, store_or_fresh


def create_app(options: ServiceOptions, store: ShopStore | None = None) -> FastAPI:
    """`GET /products/{id}` and `GET /products` (by `ids`, else paged with optional category)."""
    data = store_or_fresh(store, options.seed).data
    products = data.products
    all_ids = list(products)
    app = create_service_app("catalog", options)

    @app.get("/products/{product_id}")
    async def get_product(product_id: str) -> Response:
        product = products.get(parse_id(product_id))
        if product is None:
            raise not_found(f"product {product_id} not found")
        return json_response(product)

    @app.get("/products")
    async def list_products(request: Request) -> Response:
        # `ids` selects a batch and wins over the paging parameters.
        ids = query_ids(request, "ids")
        if ids is not None:
            return items(products[pid] for pid in ids if pid in products)
        offset, limit = page_params(request)
        category = request.query_params.get("category")
        matching = all_ids if not category else data.product_ids_by_category.get(category, [])
        return page([products[pid] for pid in matching[offset : offset + limit]], len(matching))

    return app
