"""The users service: profiles by id, one at a time or in a batch."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from services.common import (
    ServiceOptions,
    create_service_app,
    items,
    json_response,
    not_found,
    parse_id,
    required_query_ids,
)
from services.store import ShopStore, store_or_fresh


def create_app(options: ServiceOptions, store: ShopStore | None = None) -> FastAPI:
    """`GET /users/{id}` and `GET /users?ids=...` over the shop's users."""
    users = store_or_fresh(store, options.seed).data.users
    app = create_service_app("users", options)

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> Response:
        user = users.get(parse_id(user_id))
        if user is None:
            raise not_found(f"user {user_id} not found")
        return json_response(user)

    @app.get("/users")
    async def batch_users(request: Request) -> Response:
        ids = required_query_ids(request, "ids")
        return items(users[uid] for uid in ids if uid in users)

    return app
