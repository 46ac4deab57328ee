"""Shapes: a field's GraphQL output type compiled once into what completing a value needs.

`[Review!]!` becomes a non-nullable LIST shape whose item is a non-nullable OBJECT shape; a
leaf keeps the scalar's serializer. The built-in scalars get a serializer that passes a value
of the exact Python type through untouched and asks graphql-core for anything else, so a
value serializes exactly as graphql-core's `complete_leaf_value` would, errors included.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from math import isfinite
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLEnumType,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    is_leaf_type,
)
from graphql.execution.executor import Executor
from graphql.type.scalars import (
    serialize_boolean,
    serialize_float,
    serialize_id,
    serialize_int,
    serialize_string,
)

if TYPE_CHECKING:
    from bff.graphql.fastpath.plan import Selection

LEAF, OBJECT, LIST = 0, 1, 2
# How completion checks a leaf value inline, without a call per value (`Shape.scalar`): the
# built-in scalars' common values, and a plain enum's values by lookup; anything else goes
# through the shape's serializer.
OTHER, INT, FLOAT, ID, ENUM = 0, 1, 2, 3, 4

MIN_INT, MAX_INT = -(2**31), 2**31 - 1

Serializer = Callable[[Any], Any]

EXACT: dict[Any, type] = {serialize_string: str, serialize_id: str, serialize_boolean: bool}
SCALARS: dict[Any, int] = {serialize_int: INT, serialize_float: FLOAT, serialize_id: ID}


class Unsupported(Exception):
    """The fast path does not handle this operation; graphql-core runs it instead."""


class Shape:
    __slots__ = (
        "exact",
        "inline",
        "item",
        "kind",
        "names",
        "nullable",
        "object_type",
        "scalar",
        "selection",
        "serialize",
    )

    def __init__(self, kind: int, nullable: bool) -> None:
        self.kind = kind
        self.nullable = nullable
        self.serialize: Serializer | None = None
        self.exact: type | None = None  # values of this type serialize to themselves
        self.scalar = OTHER  # or the built-in scalar whose values completion checks inline
        self.names: dict[Any, str] | None = None  # ENUM: each value's name, as graphql-core's
        self.inline = False  # a leaf whose plain values completion checks inline
        self.item: Shape | None = None
        self.object_type: GraphQLObjectType | None = None
        self.selection: Selection | None = None


def shape_of(type_: GraphQLOutputType) -> Shape:
    """The shape of `type_`; an OBJECT shape's `selection` is filled in by the planner."""
    nullable = True
    if isinstance(type_, GraphQLNonNull):
        nullable, type_ = False, type_.of_type
    if isinstance(type_, GraphQLList):
        shape = Shape(LIST, nullable)
        shape.item = shape_of(type_.of_type)
        return shape
    if is_leaf_type(type_):
        shape = Shape(LEAF, nullable)
        shape.serialize = serializer(type_)
        coerce = getattr(type_, "coerce_output_value", None)
        shape.exact = EXACT.get(coerce)
        shape.scalar = SCALARS.get(coerce, OTHER)
        names = enum_names(type_)
        if names is not None:
            shape.scalar, shape.names = ENUM, names
        shape.inline = shape.scalar != OTHER or shape.exact is not None
        return shape
    if isinstance(type_, GraphQLObjectType):
        if type_.is_type_of is not None:  # graphql-core would check every value
            raise Unsupported(f"{type_.name} checks its values")
        shape = Shape(OBJECT, nullable)
        shape.object_type = type_
        return shape
    raise Unsupported(f"abstract type {type_}")


def enum_names(type_: GraphQLLeafType) -> dict[Any, str] | None:
    """A plain `GraphQLEnumType`'s lookup of names by value: a value found there is what its
    `coerce_output_value` answers (an unhashable or unknown value is left to it). None for
    any other type, a subclass included (strawberry's enums map their members themselves)."""
    if type(type_) is not GraphQLEnumType:
        return None
    lookup = getattr(type_, "_value_lookup", None)  # graphql-core's, built once per type
    return lookup if isinstance(lookup, dict) else None


def serializer(type_: GraphQLLeafType) -> Serializer:
    complete: Serializer = partial(Executor.complete_leaf_value, type_)
    coerce = getattr(type_, "coerce_output_value", None)
    if coerce is serialize_string:
        return lambda v: v if type(v) is str else complete(v)
    if coerce is serialize_id:
        return _id(complete)
    if coerce is serialize_int:
        return lambda v: v if type(v) is int and MIN_INT <= v <= MAX_INT else complete(v)
    if coerce is serialize_float:
        return lambda v: v if type(v) is float and isfinite(v) else complete(v)
    if coerce is serialize_boolean:
        return lambda v: v if type(v) is bool else complete(v)
    return complete


def _id(complete: Serializer) -> Serializer:
    def serialize(v: Any) -> Any:
        kind = type(v)
        if kind is str:
            return v
        if kind is int:
            return str(v)
        return complete(v)

    return serialize
