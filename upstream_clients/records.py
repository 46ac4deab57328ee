"""Immutable records the typed clients return: the only shape of upstream data above this layer.

`msgspec.Struct`s, decoded straight from an answer's bytes (`ServiceClient.get_decoded`):
msgspec checks each field's type and maps the services' camelCase keys (`userId`) to these
names in C, about four times less CPU than parsing JSON and then building a record per item
(`python -m bench.records`). Keys a record does not name are ignored, so a service may add
fields without breaking the gateway. `gc=False`: records hold no cycles, and a Dashboard makes
a few hundred of them that the collector need not track.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

import msgspec

T = TypeVar("T")


class Record(msgspec.Struct, frozen=True, rename="camel", gc=False):
    """Base of the records: immutable, camelCase on the wire."""


class User(Record, frozen=True):
    id: int
    name: str
    email: str
    created_at: str


class Product(Record, frozen=True):
    id: int
    name: str
    price: float
    currency: str
    category: str


class OrderLine(Record, frozen=True):
    product_id: int
    quantity: int
    unit_price: float


class Order(Record, frozen=True):
    id: int
    user_id: int
    status: str
    created_at: str
    items: tuple[OrderLine, ...]

    @property
    def total(self) -> float:
        total = 0.0  # a plain loop: no comprehension frame per order (a Dashboard has 20)
        for line in self.items:
            total += line.quantity * line.unit_price
        return round(total, 2)


class Review(
    Record, frozen=True, order=True
):  # ordered by its fields, id first: reviews sort by id
    id: int
    product_id: int
    user_id: int
    rating: int
    body: str


class Stock(Record, frozen=True):
    product_id: int
    available: int


class Items(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """The batch endpoints' answer: `{"items": [...]}`."""

    items: tuple[T, ...]


class Listing(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """The list endpoints' answer: `{"items": [...], "total": T}`."""

    items: tuple[T, ...]
    total: int


class Page(NamedTuple, Generic[T]):
    """One slice of a paginated list and the size of the whole list."""

    items: tuple[T, ...]
    total: int
    offset: int
