"""Deterministic seeded data for the sample shop.

Every sample service serves a slice of one generated shop. Generating it from a seed (and only
from the seed) lets tests, demos and benchmarks name concrete ids and expect the same answers on
every run and on every instance of a service. All services started in one process share the
same read-only `ShopData` through `shop_data(seed)`; what requests add at run time lives in a
separate `ShopStore` (see `services.store`), so nothing here is ever mutated.

Records are plain dicts shaped exactly like the REST bodies, so a handler can hand them to the
JSON encoder as they are.
"""

from __future__ import annotations

import hmac
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TypedDict, TypeVar

USER_COUNT = 1000
PRODUCT_COUNT = 500
ORDER_COUNT = 5000
MAX_REVIEWS_PER_PRODUCT = 8

CATEGORIES = ("books", "games", "garden", "kitchen", "music", "toys")
CURRENCIES = ("USD", "EUR")
ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
ADMIN_USER_ID = 1
ADMIN_SCOPES = ("orders:read", "users:read:email", "admin")

T = TypeVar("T")

_FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Guido",
    "Hedy", "Ivan", "John", "Katherine", "Linus", "Margaret", "Niklaus", "Radia", "Tim",
)  # fmt: skip
_LAST_NAMES = (
    "Allen", "Babbage", "Cerf", "Dijkstra", "Engelbart", "Floyd", "Hopper", "Johnson",
    "Kay", "Knuth", "Lamarr", "Liskov", "Lovelace", "Perlman", "Ritchie", "Turing", "Wirth",
)  # fmt: skip
_ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Everyday", "Handmade", "Modern", "Pocket", "Rustic",
    "Smart", "Vintage",
)  # fmt: skip
_NOUNS = {
    "books": ("Cookbook", "Novel", "Atlas", "Anthology", "Field Guide"),
    "games": ("Board Game", "Card Game", "Puzzle", "Dice Set", "Strategy Game"),
    "garden": ("Trowel", "Planter", "Watering Can", "Seed Kit", "Hose"),
    "kitchen": ("Skillet", "Kettle", "Knife Set", "Teapot", "Cutting Board"),
    "music": ("Ukulele", "Vinyl Record", "Harmonica", "Metronome", "Songbook"),
    "toys": ("Kite", "Robot", "Yo-yo", "Building Blocks", "Teddy Bear"),
}
_REVIEW_BODIES = (
    "Exactly as described.",
    "Would buy again.",
    "Arrived late but works fine.",
    "Not worth the price.",
    "My kids love it.",
    "Solid quality for the money.",
    "Broke after a week.",
    "Better than expected!",
)
# Weighted so that the status mix looks like a real shop: most orders are done.
_STATUS_WEIGHTS = (10, 15, 20, 45, 10)
_RATING_WEIGHTS = (5, 8, 17, 35, 35)

_USERS_SINCE = datetime(2020, 1, 1, tzinfo=UTC)
_ORDERS_SINCE = datetime(2023, 1, 1, tzinfo=UTC)


class UserRecord(TypedDict):
    id: int
    name: str
    email: str
    createdAt: str


class ProductRecord(TypedDict):
    id: int
    name: str
    price: float
    currency: str
    category: str


class OrderItemRecord(TypedDict):
    productId: int
    quantity: int
    unitPrice: float


class OrderRecord(TypedDict):
    id: int
    userId: int
    status: str
    createdAt: str
    items: list[OrderItemRecord]


class ReviewRecord(TypedDict):
    id: int
    productId: int
    userId: int
    rating: int
    body: str


class StockRecord(TypedDict):
    productId: int
    available: int


class Principal(TypedDict):
    sub: str
    scopes: list[str]
    roles: list[str]


def iso8601(moment: datetime) -> str:
    """Render a UTC instant the one way every service writes timestamps."""
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


@dataclass(frozen=True)
class ShopData:
    """The generated shop: records by id plus the indexes the endpoints need.

    Equality compares the records only, so two shops built from one seed compare equal.
    """

    seed: int
    users: dict[int, UserRecord]
    products: dict[int, ProductRecord]
    orders: dict[int, OrderRecord]
    reviews_by_product: dict[int, list[ReviewRecord]]
    stock: dict[int, StockRecord]
    product_ids_by_category: dict[str, list[int]] = field(compare=False)
    order_ids_by_user: dict[int, list[int]] = field(compare=False)

    def verify(self, username: str, password: str) -> Principal | None:
        """Check sample credentials: user N logs in as `userN` with password `passwordN`."""
        digits = username.removeprefix("user")
        if digits == username or not (digits.isascii() and digits.isdigit()):
            return None
        user_id = int(digits)
        if user_id not in self.users or str(user_id) != digits:
            return None
        if not hmac.compare_digest(password.encode(), f"password{user_id}".encode()):
            return None
        if user_id == ADMIN_USER_ID:
            return {"sub": digits, "scopes": list(ADMIN_SCOPES), "roles": ["admin", "customer"]}
        return {"sub": digits, "scopes": [], "roles": ["customer"]}


def build_shop_data(seed: int = 42) -> ShopData:
    """Generate a fresh shop from `seed`; prefer the cached `shop_data` outside tests."""
    rng = random.Random(seed)
    draw = _Draw(rng)
    users = _users(draw)
    products = _products(draw)
    orders = _orders(rng, draw, products)
    reviews = _reviews(rng, draw)
    stock: dict[int, StockRecord] = {
        pid: {"productId": pid, "available": draw.between(0, 100)} for pid in products
    }
    by_category: dict[str, list[int]] = {category: [] for category in CATEGORIES}
    for product in products.values():
        by_category[product["category"]].append(product["id"])
    by_user: dict[int, list[int]] = {uid: [] for uid in users}
    for order in orders.values():
        by_user[order["userId"]].append(order["id"])
    return ShopData(
        seed=seed,
        users=users,
        products=products,
        orders=orders,
        reviews_by_product=reviews,
        stock=stock,
        product_ids_by_category=by_category,
        order_ids_by_user=by_user,
    )


@lru_cache(maxsize=8)
def shop_data(seed: int = 42) -> ShopData:
    """The shared, read-only shop for `seed`, built once per process."""
    return build_shop_data(seed)


class _Draw:
    """Fast draws from a seeded `random.Random`.

    `randint` and `choice` cost several Python calls each; scaling one `random()` keeps building
    the whole shop well under the time budget of a test's start-up.
    """

    def __init__(self, rng: random.Random) -> None:
        self.random = rng.random

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]


def _users(draw: _Draw) -> dict[int, UserRecord]:
    users: dict[int, UserRecord] = {}
    span = 3 * 365 * 24 * 3600
    for uid in range(1, USER_COUNT + 1):
        first, last = draw.pick(_FIRST_NAMES), draw.pick(_LAST_NAMES)
        users[uid] = {
            "id": uid,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{uid}@example.com",
            "createdAt": iso8601(_USERS_SINCE + timedelta(seconds=draw.between(0, span))),
        }
    return users


def _products(draw: _Draw) -> dict[int, ProductRecord]:
    products: dict[int, ProductRecord] = {}
    for pid in range(1, PRODUCT_COUNT + 1):
        category = draw.pick(CATEGORIES)
        products[pid] = {
            "id": pid,
            "name": f"{draw.pick(_ADJECTIVES)} {draw.pick(_NOUNS[category])}",
            "price": draw.between(200, 20000) / 100,
            "currency": draw.pick(CURRENCIES),
            "category": category,
        }
    return products


def _orders(
    rng: random.Random, draw: _Draw, products: dict[int, ProductRecord]
) -> dict[int, OrderRecord]:
    orders: dict[int, OrderRecord] = {}
    moment = _ORDERS_SINCE
    statuses = rng.choices(ORDER_STATUSES, weights=_STATUS_WEIGHTS, k=ORDER_COUNT)
    for oid in range(1, ORDER_COUNT + 1):
        moment += timedelta(seconds=draw.between(60, 7200))  # strictly increasing with the id
        items: list[OrderItemRecord] = []
        for _ in range(draw.between(1, 4)):
            pid = draw.between(1, PRODUCT_COUNT)
            items.append(
                {
                    "productId": pid,
                    "quantity": draw.between(1, 5),
                    "unitPrice": products[pid]["price"],
                }
            )
        orders[oid] = {
            "id": oid,
            "userId": draw.between(1, USER_COUNT),
            "status": statuses[oid - 1],
            "createdAt": iso8601(moment),
            "items": items,
        }
    return orders


def _reviews(rng: random.Random, draw: _Draw) -> dict[int, list[ReviewRecord]]:
    reviews: dict[int, list[ReviewRecord]] = {}
    next_id = 1
    for pid in range(1, PRODUCT_COUNT + 1):
        count = draw.between(0, MAX_REVIEWS_PER_PRODUCT)
        ratings = rng.choices(range(1, 6), weights=_RATING_WEIGHTS, k=count)
        reviews[pid] = []
        for rating in ratings:
            reviews[pid].append(
                {
                    "id": next_id,
                    "productId": pid,
                    "userId": draw.between(1, USER_COUNT),
                    "rating": rating,
                    "body": draw.pick(_REVIEW_BODIES),
                }
            )
            next_id += 1
    return reviews
