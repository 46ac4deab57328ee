"""A shipping service added to the shop graph, in one file: record, client, loader, fields."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import strawberry

from bff.graph import (
    BatchLoader,
    Graph,
    RequestContext,
    ServiceClient,
    batched,
    client,
    field,
    id_list,
    loader,
)
from resolvers.loaders import ShopLoaders
from schema.mutation import Mutation as ShopMutation
from schema.query import Query as ShopQuery
from schema.types import Order
from upstream_clients import ShopClients


class Shipment(NamedTuple):  # the record: what the client answers, read by the type below
    order_id: int
    carrier: str
    status: str


def shipment_record(d: Any) -> Shipment:
    return Shipment(int(d["orderId"]), str(d["carrier"]), str(d["status"]))


class ShippingClient(ServiceClient):  # GET /shipments?orderIds=1,2 -> {"items": [...]}
    async def shipments(self, order_ids: Iterable[int]) -> list[Shipment]:
        data = await self.get("/shipments", {"orderIds": id_list(order_ids)})
        return self.parse_items(shipment_record, data)


class Clients(ShopClients):
    shipping = client(ShippingClient)  # the upstream `shipping` in bff.yaml


class ShipmentLoader(BatchLoader[int, Shipment, Shipment]):  # one call per level of a query
    upstream = "shipping"
    clients: Clients

    async def fetch(self, keys: list[int]) -> list[Shipment]:
        return await self.clients.shipping.shipments(keys)

    def key_of(self, record: Shipment) -> int:
        return record.order_id


class Loaders(ShopLoaders):
    shipments = loader(ShipmentLoader)


Ctx = RequestContext[Clients, Loaders]


@strawberry.type(name="Shipment")
class ShipmentType:
    carrier: str
    status: str

    @batched(description="The order shipped, from the shop's orders service.")
    async def order(ctx: Ctx, shipments: Sequence[Shipment]) -> list[Order | None]:
        return await ctx.loaders.orders.load_settled([s.order_id for s in shipments])


@strawberry.type
class Query(ShopQuery):
    @field(list[ShipmentType | None])
    async def shipments(
        self, info: strawberry.Info[Ctx, None], order_ids: list[strawberry.ID]
    ) -> list[Shipment | None]:
        keys = [int(i) for i in order_ids]
        return list(await info.context.loaders.shipments.load_many(keys))


schema = strawberry.Schema(query=Query, mutation=ShopMutation)
graph = Graph.from_strawberry(schema, clients=Clients, loaders=Loaders, name="shop+shipping")
