"""Frozen records the typed clients return: the only shape of upstream data above this layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    price: float
    currency: str
    category: str


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: int
    quantity: int
    unit_price: float


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    user_id: int
    status: str
    created_at: str
    items: tuple[OrderLine, ...]

    @property
    def total(self) -> float:
        return round(sum(line.quantity * line.unit_price for line in self.items), 2)


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    product_id: int
    user_id: int
    rating: int
    body: str


@dataclass(frozen=True, slots=True)
class Stock:
    product_id: int
    available: int


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the auth service says a set of credentials belongs to."""

    sub: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One slice of a paginated list and the size of the whole list."""

    items: tuple[T, ...]
    total: int
    offset: int
