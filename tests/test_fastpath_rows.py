"""Rows: a selection's plain attribute leaves filled in one generated loop (`fastpath.rows`).

That the answers are graphql-core's is the differential tests' part (`test_fastpath`'s toy
schema, the library's generated queries); here, what the loop fills and where it stops.
"""

from __future__ import annotations

import math
from operator import attrgetter, itemgetter
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLString,
)

from bff.graphql.fastpath.plan import ATTR, FieldPlan
from bff.graphql.fastpath.rows import attribute_of, row_filler
from bff.graphql.fastpath.shapes import shape_of

STATUS = GraphQLEnumType("Status", {"OPEN": "open", "DONE": "done"})
TYPES = {
    "id": GraphQLNonNull(GraphQLID),
    "count": GraphQLInt,
    "weight": GraphQLNonNull(GraphQLFloat),
    "status": STATUS,
    "name": GraphQLString,
}


class Row:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def plans(**reads: Any) -> list[FieldPlan]:
    return [
        FieldPlan(key, key, ATTR, None, None, [], shape=shape_of(TYPES[key]), read=read)  # type: ignore[arg-type]
        for key, read in reads.items()
    ]


FIELDS = plans(**{key: attrgetter(key) for key in TYPES})
PLAIN = {"id": 7, "count": 3, "weight": 1.5, "status": "done", "name": "n"}


def filled(rows: list[Row]) -> tuple[list[dict[str, Any]], int]:
    made = row_filler(FIELDS)
    assert made is not None and made.fields == tuple(FIELDS)
    outs: list[dict[str, Any]] = [dict.fromkeys(TYPES) for _ in rows]
    return outs, made.fill(rows, outs)  # type: ignore[arg-type]


def test_plain_values_are_stored_as_completion_stores_them() -> None:
    outs, stopped = filled([Row(**PLAIN), Row(**{**PLAIN, "id": "x", "count": None})])
    assert stopped == -1
    assert outs[0] == {"id": "7", "count": 3, "weight": 1.5, "status": "DONE", "name": "n"}
    assert outs[1]["id"] == "x" and outs[1]["count"] is None  # a null that may be null


@pytest.mark.parametrize(
    "odd",
    [
        {"id": None},  # a null where none may be
        {"count": 2**31},  # no Int
        {"count": True},  # a bool is no Int
        {"weight": math.inf},
        {"weight": 2},  # an int where a Float is due: the serializer's part
        {"status": "odd"},
        {"status": ["open"]},  # unhashable
        {"name": b"n"},
        {"id": 10**5000},  # past str()'s digit limit
    ],
)
def test_the_loop_stops_at_the_first_parent_with_an_odd_value(odd: dict[str, Any]) -> None:
    rows = [Row(**PLAIN), Row(**{**PLAIN, **odd}), Row(**PLAIN)]
    outs, stopped = filled(rows)
    assert stopped == 1
    assert outs[0]["status"] == "DONE" and outs[2] == dict.fromkeys(TYPES)


def test_a_read_that_raises_stops_the_loop_there() -> None:
    outs, stopped = filled([Row(**PLAIN), Row(id=1)])  # no `count`
    assert stopped == 1 and outs[0]["name"] == "n"


def test_only_plain_attribute_reads_of_inline_leaves_join() -> None:
    assert attribute_of(attrgetter("name")) == "name"
    for read in (attrgetter("a.b"), attrgetter("a", "b"), attrgetter("class"), itemgetter("a")):
        assert attribute_of(read) is None
    assert row_filler(FIELDS[:1]) is None  # one field is its own loop already
    odd = plans(id=attrgetter("id"), count=itemgetter("count"), name=attrgetter("name"))
    made = row_filler(odd)
    assert made is not None and [f.key for f in made.fields] == ["id", "name"]
