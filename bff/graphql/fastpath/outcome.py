"""Positions in the response, and the errors and nulls of one execution.

A `Pos` is a place that holds a value (`holder[key]`: a field of an object, an item of a list),
knows the place above it (all an error's path and non-null propagation need) and its rank
among its siblings (the field's position in the selection, or the item's index).

The rules are graphql-core's (`Executor.handle_field_error`, `CollectedErrors`):

- an error in a nullable place nulls that place and is reported with its path;
- an error (or a null) in a non-null place nulls the nearest nullable place above it (the
  whole `data` when there is none), and only the first error to reach a place is reported;
- once a place is nulled, errors from below it are no longer reported, and nothing below it
  is executed any further.

What "once" means follows graphql-core's timing. It completes a value that arrives for one
parent synchronously, depth first, and a null that propagates stops the rest of that work
under the nulled place; the other parents, fed by the same upstream answer, are completed by
tasks of their own in the same event-loop step, and a nulled place silences them from the
next step on. The engine completes a whole level at once instead, so `Outcome` collects the
errors of each such step (`report`, `kill`) and settles them in `flush`, replayed per parent
in depth-first order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
from graphql import GraphQLError

REPORT, KILL = 0, 1


class Pos(msgspec.Struct, eq=False, gc=False):
    """A place (`holder[key]`). A msgspec struct: a Dashboard makes one per object and list
    of its response, and a struct is built in C, where a class with `__init__` runs Python.
    `eq=False`: places compare and hash by identity. `gc=False`: a place refers to its parent
    place and to result containers, none of which refers back to a place."""

    parent: Pos | None
    key: Any
    holder: Any
    nullable: bool
    rank: int


class Boundary(Pos, eq=False, gc=True):
    """Where a deferred fragment's data starts, under the object it is deferred on: a nullable
    place of its own (a non-null error in the fragment nulls the fragment's data, not the
    object, which an earlier part already carried), and no key of the response path. Tracked
    by the collector: its group's task refers back to it."""

    group: Any = None


def boundary(parent: Pos, box: dict[str, Any], group: Any) -> Boundary:
    """The boundary of a deferred fragment's `box` under `parent`."""
    return Boundary(parent, "data", box, True, 0, group)


def path_of(pos: Pos | None, key: Any = None) -> list[Any]:
    """The response path of `key` under `pos` (of `pos` itself without `key`)."""
    keys = [] if key is None else [key]
    while pos is not None and pos.parent is not None:
        if type(pos) is not Boundary:
            keys.append(pos.key)
        pos = pos.parent
    keys.reverse()
    return keys


def _within(pos: Pos | None, places: set[Pos]) -> bool:
    while pos is not None:
        if pos in places:
            return True
        pos = pos.parent
    return False


class Outcome:
    """The reported errors of one execution; `kills` counts the places nulled so far."""

    def __init__(self, root: Pos) -> None:
        self.root = root
        self.errors: list[GraphQLError] = []
        self.kills = 0
        self.dead: set[Pos] = set()  # nulled: nothing more runs below them
        self.sealed: set[Pos] = set()  # and errors from below them are no longer reported
        self._unsealed: list[Pos] = []
        self._events: list[tuple[int, GraphQLError, Pos, tuple[int, ...]]] = []

    def is_dead(self, pos: Pos) -> bool:
        return bool(self.kills) and _within(pos, self.dead)

    def report(self, error: GraphQLError, parent: Pos, rank: int) -> None:
        """An error in a nullable place (rank `rank` under `parent`), which holds null."""
        self._events.append((REPORT, error, parent, (rank,)))

    def kill(self, error: GraphQLError, pos: Pos, ranks: tuple[int, ...]) -> None:
        """An error (at `ranks` below `pos`) that nulls `pos`, or the nearest nullable place
        above it."""
        self._events.append((KILL, error, pos, ranks))

    def flush(self, parents: Sequence[Pos]) -> None:
        """Settle the errors of a step that completed values for `parents`."""
        if not self._events:
            return
        events, self._events = self._events, []
        group = {parent: i for i, parent in enumerate(parents)}
        ordered = []
        for n, (_, _, pos, tail) in enumerate(events):
            ranks: list[int] = []
            place: Pos | None = pos
            while place is not None and place not in group:
                ranks.append(place.rank)
                place = place.parent
            ranks.reverse()
            where = -1 if place is None else group[place]
            ordered.append((where, [*ranks, *tail], n))  # depth first, per parent
        ordered.sort()
        stopped: set[Pos] = set()  # nulled by this step: the rest of that parent's work stops
        current = None
        for where, _, n in ordered:
            if where != current:
                current, stopped = where, set()
            kind, error, pos, _ = events[n]
            if stopped and _within(pos, stopped):
                continue
            if kind == REPORT:
                if not (self.sealed and _within(pos, self.sealed)):
                    self.errors.append(error)
            else:
                place = self._null(error, pos)
                if place is not None:
                    stopped.add(place)

    def _null(self, error: GraphQLError, pos: Pos) -> Pos | None:
        place: Pos | None = pos
        while place is not None and not place.nullable:
            place = place.parent
        if place is None:
            place = self.root
        if place in self.dead or (self.sealed and _within(place.parent, self.sealed)):
            return None
        self.errors.append(error)
        self.dead.add(place)
        place.holder[place.key] = None
        self.kills += 1
        if not self._unsealed:
            asyncio.get_running_loop().call_soon(self._seal)
        self._unsealed.append(place)
        return place

    def _seal(self) -> None:
        self.sealed.update(self._unsealed)
        self._unsealed.clear()
