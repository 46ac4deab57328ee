"""Completion: values of a field for all parents of a level, made into the response.

Follows graphql-core's `complete_value`: scalars through the type's serializer, lists item by
item, objects as a copy of their selection's empty result (filled by the level below), and
every failure handled as `Executor.handle_field_error` would: reported where the place may
be null, or carried up (`Bubble`) to the nearest place that may, through `Outcome`.

It counts what it builds (`built`: each object, plus one per field it holds) and raises
`ResponseTooLarge` once that passes `limit` (`bff.graphql.ceiling`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError, located_error
from graphql.pyutils import is_iterable

from bff.graphql.ceiling import MAX_RESULT_VALUES, ResponseTooLarge
from bff.graphql.fastpath.outcome import Outcome, Pos, path_of
from bff.graphql.fastpath.plan import FieldPlan, Selection
from bff.graphql.fastpath.shapes import (
    ENUM,
    FLOAT,
    ID,
    INT,
    LEAF,
    LIST,
    MAX_INT,
    MIN_INT,
    OBJECT,
    Shape,
)
from bff.int_text import INT_TEXT

PLAIN_LISTS = (list, tuple)


class Bubble(Exception):
    """A non-null place got null: the error travels up to the nearest nullable place.
    `ranks` say where it comes from, below the place it has reached."""

    def __init__(self, error: GraphQLError, rank: int) -> None:
        self.error = error
        self.ranks: tuple[int, ...] = (rank,)


class Level:
    """Parents of one selection: records, their result dicts and their places."""

    __slots__ = ("outs", "places", "selection", "sources")

    def __init__(self, selection: Selection | None) -> None:
        self.selection = selection
        self.sources: list[Any] = []
        self.outs: list[dict[str, Any]] = []
        self.places: list[Pos] = []


class Completion:
    outcome: Outcome
    limit: int = MAX_RESULT_VALUES
    built: int = 0  # objects and their fields built so far
    next_yield: int = 0  # `built` at which the engine next gives the event loop a turn

    def complete(
        self,
        field: FieldPlan,
        values: list[Any],
        outs: list[dict[str, Any]],
        places: list[Pos],
    ) -> Level | None:
        """Put each parent's value of `field` into its result; the objects met on the way are
        the parents of the level below, returned.

        Plain values (a scalar, a record, a list of them) are completed in the loops below;
        anything else (a null, an exception, an odd value) goes through `place`, the general
        form, which also redoes a list the loop gave up halfway through.
        """
        shape = field.shape
        assert shape is not None
        key, rank = field.key, field.rank
        kind = shape.kind
        slow: list[int] = []
        inner = shape
        while inner.item is not None:
            inner = inner.item
        below = Level(inner.selection)
        sources, children, below_places = below.sources, below.outs, below.places
        if kind == LEAF:
            plain = self.plain_leaves(shape, key, values, outs)
            rest = range(len(values)) if plain is None else plain[0]
            if rest:
                self.serialized_leaves(shape, key, rest, values, outs, slow)
        elif kind == OBJECT:
            assert shape.selection is not None
            template, nullable = shape.selection.template, shape.nullable
            for i, value in enumerate(values):
                if value is None or isinstance(value, Exception):
                    slow.append(i)
                    continue
                holder = outs[i]
                holder[key] = out = template.copy()
                sources.append(value)
                children.append(out)
                below_places.append(Pos(places[i], key, holder, nullable, rank))
        else:
            item = shape.item
            assert item is not None
            if item.kind == OBJECT:
                self.object_lists(shape, item, field, values, outs, places, below, slow)
            elif item.kind == LEAF:
                serialize = item.serialize
                assert serialize is not None
                for i, value in enumerate(values):
                    if type(value) not in PLAIN_LISTS:
                        slow.append(i)
                        continue
                    try:
                        outs[i][key] = [serialize(element) for element in value]
                    except Exception:
                        slow.append(i)
            else:
                slow.extend(range(len(values)))
        for i in slow:
            try:
                self.place(shape, values[i], outs[i], key, places[i], field, below)
            except Bubble as bubble:  # a non-null field: its object is nulled, or above
                self.outcome.kill(bubble.error, places[i], bubble.ranks)
        if not below_places:
            return None
        assert inner.selection is not None
        self.built += len(below_places) * (len(inner.selection.template) + 1)
        if self.built > self.limit:
            raise ResponseTooLarge(self.limit)
        return below

    @staticmethod
    def plain_leaves(
        shape: Shape, key: str, values: Iterable[Any], outs: list[dict[str, Any]]
    ) -> tuple[list[int], list[Any]] | None:
        """Store the built-in scalars' plain values (a value of the exact type, an Int in range,
        a finite Float, an ID from a str or an int) and a plain enum's known values (its
        name), checked in one loop per scalar; the others' indexes and values are returned.
        None: this scalar has no such check."""
        scalar, exact = shape.scalar, shape.exact
        rest: list[int] = []
        odd: list[Any] = []
        if scalar == INT:
            for i, value in enumerate(values):
                if type(value) is int and MIN_INT <= value <= MAX_INT:
                    outs[i][key] = value
                else:
                    rest.append(i)
                    odd.append(value)
        elif scalar == FLOAT:
            for i, value in enumerate(values):
                if type(value) is float and value - value == 0.0:  # not inf, not nan
                    outs[i][key] = value
                else:
                    rest.append(i)
                    odd.append(value)
        elif scalar == ID:
            texts = INT_TEXT  # str(value), remembered
            for i, value in enumerate(values):
                kind = type(value)
                if kind is str:
                    outs[i][key] = value
                elif kind is int:
                    try:
                        outs[i][key] = texts[value]
                    except ValueError:  # past str()'s digit limit: the serializer's error
                        rest.append(i)
                        odd.append(value)
                else:
                    rest.append(i)
                    odd.append(value)
        elif scalar == ENUM:
            names = shape.names
            assert names is not None
            for i, value in enumerate(values):
                try:
                    outs[i][key] = names[value]
                except (KeyError, TypeError):  # unknown, or unhashable: the serializer says
                    rest.append(i)
                    odd.append(value)
        elif exact is not None:
            for i, value in enumerate(values):
                if type(value) is exact:
                    outs[i][key] = value
                else:
                    rest.append(i)
                    odd.append(value)
        else:
            return None
        return rest, odd

    @staticmethod
    def serialized_leaves(
        shape: Shape,
        key: str,
        rest: Iterable[int],
        values: list[Any],
        outs: list[dict[str, Any]],
        slow: list[int],
    ) -> None:
        """Scalars through the serializer; a null or an error (or a failed serializer) goes to
        `slow`, for `place`."""
        serialize = shape.serialize
        assert serialize is not None
        for i in rest:
            value = values[i]
            if value is None or isinstance(value, Exception):
                slow.append(i)
            else:
                try:
                    outs[i][key] = serialize(value)
                except Exception:
                    slow.append(i)

    @staticmethod
    def object_lists(
        shape: Shape,
        item: Shape,
        field: FieldPlan,
        values: list[Any],
        outs: list[dict[str, Any]],
        places: list[Pos],
        below: Level,
        slow: list[int],
    ) -> None:
        """Lists of records: one result dict per record, all in the level below."""
        assert item.selection is not None
        template, nullable = item.selection.template, item.nullable
        key, rank, list_nullable = field.key, field.rank, shape.nullable
        sources, children, below_places = below.sources, below.outs, below.places
        for i, value in enumerate(values):
            if type(value) not in PLAIN_LISTS:
                slow.append(i)
                continue
            holder = outs[i]
            place = Pos(places[i], key, holder, list_nullable, rank)
            items: list[Any] = []
            mark = len(sources)
            for index, element in enumerate(value):
                if element is None or isinstance(element, Exception):
                    del sources[mark:], children[mark:], below_places[mark:]
                    slow.append(i)
                    break
                items.append(out := template.copy())
                sources.append(element)
                children.append(out)
                below_places.append(Pos(place, index, items, nullable, index))
            else:
                holder[key] = items

    def place(
        self,
        shape: Shape,
        value: Any,
        holder: Any,
        key: Any,
        parent: Pos,
        field: FieldPlan,
        below: Level | None,
    ) -> None:
        """Complete `holder[key]`, a place below `parent`; raise `Bubble` when it may not be
        null but has to be."""
        rank = key if type(key) is int else field.rank
        if isinstance(value, Exception):  # not raised: one error may stand for many parents
            raw = value
        else:
            try:
                return self.fill(shape, value, holder, key, rank, parent, field, below)
            except Bubble as bubble:
                bubble.ranks = (rank, *bubble.ranks)
                raise
            except Exception as error:
                raw = error
        located = located_error(raw, field.nodes, path_of(parent, key))
        if not shape.nullable:
            raise Bubble(located, rank)
        holder[key] = None
        self.outcome.report(located, parent, rank)

    def fill(
        self,
        shape: Shape,
        value: Any,
        holder: Any,
        key: Any,
        rank: int,
        parent: Pos,
        field: FieldPlan,
        below: Level | None,
    ) -> None:
        if value is None:
            if not shape.nullable:
                raise TypeError(field.null_message)
            holder[key] = None
            return
        kind = shape.kind
        if kind == LEAF:
            assert shape.serialize is not None
            holder[key] = shape.serialize(value)
        elif kind == OBJECT:
            assert shape.selection is not None and below is not None
            out = shape.selection.template.copy()
            holder[key] = out
            below.sources.append(value)
            below.outs.append(out)
            below.places.append(Pos(parent, key, holder, shape.nullable, rank))
        elif kind == LIST:
            if not is_iterable(value):
                raise GraphQLError(
                    "Expected Iterable, but did not find one for field"
                    f" '{field.parent_type.name}.{field.name}'."
                )
            items: list[Any] = []
            holder[key] = items
            place = Pos(parent, key, holder, shape.nullable, rank)
            item = shape.item
            assert item is not None
            try:
                for index, element in enumerate(value):
                    items.append(None)
                    self.place(item, element, items, index, place, field, below)
            except Bubble as bubble:
                if not shape.nullable:
                    raise
                self.outcome.kill(bubble.error, place, bubble.ranks)
