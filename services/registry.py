"""The sample services by name, in their canonical order.

The order is part of the contract: `python -m services --port-base B` gives the service at index
i the ports B + 10*i + k, so the demo config can name fixed URLs.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from services import auth, catalog, inventory, orders, reviews, users
from services.common import ServiceOptions
from services.store import ShopStore

SERVICE_NAMES = ("users", "catalog", "orders", "reviews", "inventory", "auth")


class AppFactory(Protocol):
    """`create_app(options)` of a service; `store` shares run-time writes between instances."""

    def __call__(self, options: ServiceOptions, store: ShopStore | None = None) -> FastAPI: ...


APP_FACTORIES: dict[str, AppFactory] = {
    "users": users.create_app,
    "catalog": catalog.create_app,
    "orders": orders.create_app,
    "reviews": reviews.create_app,
    "inventory": inventory.create_app,
    "auth": auth.create_app,
}
