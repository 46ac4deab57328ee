"""Immutable records the typed clients return: the only shape of upstream data above this layer.

Named tuples rather than frozen dataclasses: a Dashboard builds a few hundred records, and a
frozen dataclass pays `object.__setattr__` per field (about 1.3 µs per five-field record
against 0.5 µs for a named tuple), for the same immutability and attribute access.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")

# A named tuple's own constructor is a Python-level function around this one; the clients
# build their records with it directly (`make(Review, (...))`), a frame less per record.
make = tuple.__new__


class User(NamedTuple):
    id: int
    name: str
    email: str
    created_at: str


class Product(NamedTuple):
    id: int
    name: str
    price: float
    currency: str
    category: str


class OrderLine(NamedTuple):
    product_id: int
    quantity: int
    unit_price: float


class Order(NamedTuple):
    id: int
    user_id: int
    status: str
    created_at: str
    items: tuple[OrderLine, ...]

    @property
    def total(self) -> float:
        return round(sum(line.quantity * line.unit_price for line in self.items), 2)


class Review(NamedTuple):
    id: int
    product_id: int
    user_id: int
    rating: int
    body: str


class Stock(NamedTuple):
    product_id: int
    available: int


class Page(NamedTuple, Generic[T]):
    """One slice of a paginated list and the size of the whole list."""

    items: tuple[T, ...]
    total: int
    offset: int
