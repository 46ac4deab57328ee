"""The shop's typed REST clients, one per service, on the gateway's balanced HTTP layer.

`ShopClients` declares them once (`bff.graph.client`): each request gets the clients it uses,
bound to the caller's identity headers, and the declared upstreams are the ones the shop graph
requires in `upstreams`.
"""

from __future__ import annotations

from bff.graph import Clients, client
from upstream_clients.catalog import CatalogClient
from upstream_clients.inventory import InventoryClient
from upstream_clients.orders import OrdersClient
from upstream_clients.reviews import ReviewsClient
from upstream_clients.users import UsersClient


class ShopClients(Clients):
    users = client(UsersClient)
    catalog = client(CatalogClient)
    orders = client(OrdersClient)
    reviews = client(ReviewsClient)
    inventory = client(InventoryClient)


__all__ = [
    "CatalogClient",
    "InventoryClient",
    "OrdersClient",
    "ReviewsClient",
    "ShopClients",
    "UsersClient",
]
