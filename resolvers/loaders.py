"""The per-request dataloaders: one batch per upstream per level of the query."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence

from bff.graph import BatchLoader, Loaders, loader
from upstream_clients import ShopClients
from upstream_clients.records import Order, Page, Product, Review, Stock, User


class UserLoader(BatchLoader[int, User, User]):
    upstream = "users"
    key_attribute = "id"
    clients: ShopClients

    async def fetch(self, keys: list[int]) -> Iterable[User]:
        return await self.clients.users.get_users(keys)


class ProductLoader(BatchLoader[int, Product, Product]):
    upstream = "catalog"
    key_attribute = "id"
    clients: ShopClients

    async def fetch(self, keys: list[int]) -> Iterable[Product]:
        return await self.clients.catalog.get_products(keys)


class OrderLoader(BatchLoader[int, Order, Order]):
    upstream = "orders"
    key_attribute = "id"
    clients: ShopClients

    async def fetch(self, keys: list[int]) -> Iterable[Order]:
        return await self.clients.orders.get_orders(keys)


class StockLoader(BatchLoader[int, Stock, Stock]):
    upstream = "inventory"
    key_attribute = "product_id"
    clients: ShopClients

    async def fetch(self, keys: list[int]) -> Iterable[Stock]:
        return await self.clients.inventory.get_stock(keys)


class ReviewsLoader(BatchLoader[int, tuple[Review, ...], Review]):
    """All reviews of a product, in the order the service answered them (an empty tuple when
    it has none): only a page of them needs an order (`objects.first_reviews` sorts), and the
    averages and counts a Dashboard asks for do not pay for sorting every product's reviews."""

    upstream = "reviews"
    clients: ShopClients

    async def fetch(self, keys: list[int]) -> Iterable[Review]:
        return await self.clients.reviews.reviews_of_products(keys)

    def collect(
        self, keys: Sequence[int], records: Iterable[Review]
    ) -> list[tuple[Review, ...] | None]:
        grouped: dict[int, list[Review]] = defaultdict(list)
        for review in records:
            grouped[review.product_id].append(review)
        return [tuple(grouped[k]) for k in keys]


UserOrdersKey = tuple[int, int, int]  # user id, limit, offset


PageOrFailure = Page[Order] | BaseException  # one call per key: each may fail alone


class UserOrdersLoader(BatchLoader[UserOrdersKey, Page[Order], PageOrFailure]):
    """A page of one user's orders: the service has no batch form, so one call per key."""

    upstream = "orders"
    clients: ShopClients

    async def fetch(self, keys: list[UserOrdersKey]) -> Iterable[PageOrFailure]:
        orders = self.clients.orders
        return await asyncio.gather(
            *(orders.list_orders(user_id=u, limit=n, offset=o) for u, n, o in keys),
            return_exceptions=True,
        )

    def collect(
        self, keys: Sequence[UserOrdersKey], records: Iterable[PageOrFailure]
    ) -> list[Page[Order] | None]:
        return list(records)  # type: ignore[arg-type]  # a failed page stays its exception


class ShopLoaders(Loaders):
    """The shop's loaders: each request makes the ones its query uses."""

    users = loader(UserLoader)
    products = loader(ProductLoader)
    orders = loader(OrderLoader)
    stock = loader(StockLoader)
    reviews = loader(ReviewsLoader)
    user_orders = loader(UserOrdersLoader)
