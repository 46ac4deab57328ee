"""Connections: a page of records seen as GraphQL pagination (nodes, edges, cursors, page info).

A `Connection` wraps the `Page` an upstream answered and computes what a query asks for when
it asks: edges and their cursors are built only when `edges` is read, so a query that wants
`nodes` pays nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from resolvers.arguments import encode_cursor
from upstream_clients.records import Page

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True, slots=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class Connection(Generic[T]):
    page: Page[T]

    @property
    def nodes(self) -> tuple[T, ...]:
        return self.page.items

    @property
    def edges(self) -> list[Edge[T]]:
        offset = self.page.offset
        return [Edge(encode_cursor(offset + i), node) for i, node in enumerate(self.page.items)]

    @property
    def page_info(self) -> PageInfo:
        page = self.page
        end = page.offset + len(page.items)
        return PageInfo(
            has_next_page=end < page.total,
            end_cursor=encode_cursor(end - 1) if page.items else None,
        )

    @property
    def total_count(self) -> int:
        return self.page.total
