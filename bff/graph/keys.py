"""`Keys`: the keys a batch hands its `fetch`, distinct by construction.

A loader removes duplicates as keys join a batch, so its `fetch` gets each key once. Marked
by their type, batch URLs (`bff.graph.client.id_list`) skip removing them a second time: a
dict of every id per call, about a third of writing the list (counted).
"""

from __future__ import annotations

from typing import Any


class Keys(list[Any]):
    """A list whose items are distinct (hashable, none equal to another)."""

    __slots__ = ()
