"""One typed client per REST service, built on the gateway's balanced HTTP layer.

`Clients.bind` makes the per-request set: every call carries the caller's identity headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from bff.upstream import UpstreamPool
from upstream_clients.auth import AuthClient
from upstream_clients.catalog import CatalogClient
from upstream_clients.inventory import InventoryClient
from upstream_clients.orders import OrdersClient
from upstream_clients.reviews import ReviewsClient
from upstream_clients.users import UsersClient


@dataclass(frozen=True, slots=True)
class Clients:
    users: UsersClient
    catalog: CatalogClient
    orders: OrdersClient
    reviews: ReviewsClient
    inventory: InventoryClient
    auth: AuthClient

    @classmethod
    def upstreams(cls) -> tuple[str, ...]:
        """The upstream names the clients call: each needs a section under `upstreams`."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def bind(cls, pools: Mapping[str, UpstreamPool], headers: Mapping[str, str]) -> Clients:
        """Clients over the named pools that send `headers` (the caller's identity)."""
        return cls(
            users=UsersClient(pools["users"], headers),
            catalog=CatalogClient(pools["catalog"], headers),
            orders=OrdersClient(pools["orders"], headers),
            reviews=ReviewsClient(pools["reviews"], headers),
            inventory=InventoryClient(pools["inventory"], headers),
            auth=AuthClient(pools["auth"], headers),
        )


__all__ = [
    "AuthClient",
    "CatalogClient",
    "Clients",
    "InventoryClient",
    "OrdersClient",
    "ReviewsClient",
    "UsersClient",
]
