"""The auth service: checks a username and password and says who that is.

The gateway never sees passwords beyond forwarding them here; it turns the principal this
returns into its own tokens.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request, Response

from services.common import ServiceOptions, create_service_app, invalid, json_object, json_response
from services.store import ShopStore, store_or_fresh


def create_app(options: ServiceOptions, store: ShopStore | None = None) -> FastAPI:
    """`POST /verify` -> 200 `{"sub","scopes","roles"}`, or 401 on bad credentials."""
    data = store_or_fresh(store, options.seed).data
    app = create_service_app("auth", options)

    @app.post("/verify")
    async def verify(request: Request) -> Response:
        body = await json_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise invalid("username and password must be strings")
        principal = data.verify(username, password)
        if principal is None:
            raise HTTPException(status_code=401, detail="invalid credentials")
        return json_response(principal)

    return app
