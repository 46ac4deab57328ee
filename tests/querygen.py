"""Random valid GraphQL query documents over the gateway's schema, as a hypothesis strategy.

`queries(schema)` walks the graphql-core schema from `Query` down and draws, per selection
set, a non-empty random mix of fields (aliased or not), `__typename`, inline fragments (with or
without the type condition) and named fragments (sometimes spread twice), nested up to
`MAX_DEPTH` (a root field is depth 1). Arguments come from pools that mean something in the
sample shop (`services.shop_data(42)`): ids that exist, ids that do not, ids that are not ids,
page sizes, valid and broken cursors, known and unknown categories. They are written inline
or passed as variables (with and without defaults, supplied or left out), and fields,
fragments and spreads sometimes carry `@include` / `@skip`.

Every response key of a selection set (fragments included, they merge into it) is recorded in
a scope: drawing the same key again reuses the field's arguments and its child scope, so two
occurrences always merge (`product { name ... on Product { name reviews { id } } }`) and the
documents pass validation by construction; `queries` still filters on `graphql.validate`.

Lists stay small: the product of the list sizes along any path (a connection's `first`, the
number of ids, an order's items) is kept under `MAX_WIDTH`, nested connections ask for at most
5 items, and once a document would execute `MAX_COST` fields only leaves are drawn, so one
document costs a few milliseconds to execute.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_list_type,
    is_non_null_type,
    parse,
    validate,
)
from hypothesis import strategies as st

from resolvers.arguments import encode_cursor
from services import shop_data

T = TypeVar("T")

MAX_DEPTH = 5
MAX_WIDTH = 100
MAX_COST = 400  # fields executed, lists multiplied, before only leaves are drawn
NESTED_FIRST = 5  # the largest `first` below the root, or under any list
FRAGMENT_NESTING = 2
ITEMS_PER_ORDER = 4  # the sample shop's orders have 1 to 4 lines

DATA = shop_data(42)
PLAIN_USER = 2
KNOWN_IDS = tuple(str(i) for i in range(1, 61))
MISSING_IDS = ("99999",)
INVALID_IDS = ("abc", "0", "-3", "007")
# Orders of the plain user: `order(id)` on them takes the owner branch of the permission.
OWNED_ORDERS = tuple(str(i) for i in DATA.order_ids_by_user[PLAIN_USER][:3])
FIRSTS = (0, 1, 2, 3, 5, 20)
CURSORS = (*(encode_cursor(n) for n in (0, 1, 2, 4, 9, 499)), "bad!cursor")
CATEGORIES = (*sorted(DATA.product_ids_by_category), "unknown")
ALIASES = ("a", "b", "c", "x")
FLAGS = ("flag", "beta", "full")  # variables of @include/@skip


@dataclass(frozen=True)
class GeneratedQuery:
    document: str
    variables: dict[str, Any]
    operation_name: str | None

    def __str__(self) -> str:
        parts = [self.document]
        if self.variables:
            parts.append(f"variables: {json.dumps(self.variables)}")
        if self.operation_name:
            parts.append(f"operationName: {self.operation_name}")
        return "\n".join(parts)


Pools = Mapping[str, Callable[[str], st.SearchStrategy[Any]]]  # argument -> (field -> values)


def queries(schema: GraphQLSchema, pools: Pools | None = None) -> st.SearchStrategy[GeneratedQuery]:
    """Query documents over `schema` that pass validation (mutations are never drawn).

    `pools` give the values of arguments by name (by field name within), for schemas other
    than the shop's; a `limit` argument is drawn and counted as `first` is."""
    return _query(schema, pools or {}).filter(lambda q: is_valid(schema, q.document))


def is_valid(schema: GraphQLSchema, document: str) -> bool:
    return not validate(schema, parse(document))


@dataclass
class _Entry:
    """One response key of a selection set: the field behind it and how it is called."""

    field: str
    arguments: str
    width: int  # how many times the field's selection set is executed, lists multiplied
    children: dict[str, _Entry] = field(default_factory=dict)


@dataclass
class _Argument:
    """What to write for one argument: its text and the value the resolver will see."""

    text: str | None  # None: left out
    value: Any


@st.composite
def _query(draw: st.DrawFn, schema: GraphQLSchema, pools: Pools) -> GeneratedQuery:
    assert schema.query_type is not None
    builder = _Builder(draw, pools)
    body = builder.selection_set(schema.query_type, {}, 1, 1, FRAGMENT_NESTING)
    variables = f"({', '.join(builder.definitions)})" if builder.definitions else ""
    two_operations = builder.chance(10)
    named = two_operations or builder.chance(40)
    if named:
        operation = f"query Q{variables} {body}"
    elif variables or builder.chance(50):
        operation = f"query{variables} {body}"
    else:
        operation = body
    definitions = [operation, *builder.fragments]
    if two_operations:
        position = draw(st.integers(0, 1))
        definitions.insert(position, "query Other { __typename }")
    operation_name = "Q" if two_operations or (named and builder.chance(50)) else None
    return GeneratedQuery("\n".join(definitions), builder.values, operation_name)


class _Builder:
    def __init__(self, draw: st.DrawFn, pools: Pools) -> None:
        self.draw = draw
        self.pools = pools
        self.definitions: list[str] = []  # variable definitions of the operation
        self.values: dict[str, Any] = {}  # variables the request supplies
        self.fragments: list[str] = []
        self.counter = itertools.count()
        self.cost = 0  # fields executed so far, as each occurrence's width added up
        self.flags: set[str] = set()  # flag variables defined so far
        # Half the documents carry `@include`/`@skip` (the fast path plans one root per
        # combination of their variables), some of them on most selections.
        self.directive_percent = self.pick((0, 0, 10, 40))

    # -- drawing helpers (each shrinks towards the plainer document)

    def chance(self, percent: int) -> bool:
        return percent > 0 and self.draw(_PERCENT) >= 100 - percent

    def pick(self, options: Sequence[T]) -> T:
        return options[self.draw(_index(len(options)))]

    @property
    def spent(self) -> bool:
        return self.cost >= MAX_COST

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    # -- selections

    def selection_set(
        self, parent: GraphQLObjectType, scope: dict[str, _Entry], depth: int, width: int, nest: int
    ) -> str:
        count = 1 if self.spent else self.draw(st.integers(1, 4))
        items = [self.selection(parent, scope, depth, width, nest) for _ in range(count)]
        return "{ " + " ".join(items) + " }"

    def selection(
        self, parent: GraphQLObjectType, scope: dict[str, _Entry], depth: int, width: int, nest: int
    ) -> str:
        kinds = ["field"] * 6 + ["__typename"] + (["inline", "spread"] if nest else [])
        if self.spent:
            kinds = ["field"]
        kind = self.pick(kinds)
        if kind == "__typename":
            return self.typename(scope)
        if kind == "inline":
            condition = self.pick(("", f" on {parent.name}"))
            inner = self.selection_set(parent, scope, depth, width, nest - 1)
            return f"...{condition}{self.directives()} {inner}"
        if kind == "spread":
            name = self.fresh("F")
            inner = self.selection_set(parent, scope, depth, width, nest - 1)
            self.fragments.append(f"fragment {name} on {parent.name} {inner}")
            spreads = [f"...{name}{self.directives()}"]
            if self.chance(20):  # the same fragment spread twice merges with itself
                spreads.append(f"...{name}{self.directives()}")
            return " ".join(spreads)
        return self.field(parent, scope, depth, width, nest)

    def typename(self, scope: dict[str, _Entry]) -> str:
        alias = self.alias()
        key = alias or "__typename"
        if key in scope and scope[key].field != "__typename":
            alias = key = self.fresh("k")
        scope.setdefault(key, _Entry("__typename", "", 0))
        return f"{alias + ': ' if alias else ''}__typename{self.directives()}"

    def alias(self) -> str | None:
        return self.pick((None, None, None, *ALIASES))

    def field(
        self, parent: GraphQLObjectType, scope: dict[str, _Entry], depth: int, width: int, nest: int
    ) -> str:
        names = [n for n, f in parent.fields.items() if self.usable(parent, n, f, depth, width)]
        if self.spent:
            names = [n for n in names if not _is_object(parent.fields[n])]
            if not names:  # the root has no leaf but `__typename`
                return self.typename(scope)
        self.cost += width
        name = self.pick(names)
        definition = parent.fields[name]
        alias = self.alias()
        key = alias or name
        entry = scope.get(key)
        if entry is not None and entry.field != name:
            alias = key = self.fresh("k")
            entry = None
        if entry is None:
            arguments, inner_width = self.arguments(parent, name, definition, depth, width)
            entry = scope[key] = _Entry(name, arguments, inner_width)
        text = f"{alias + ': ' if alias else ''}{name}{entry.arguments}{self.directives()}"
        child = get_named_type(definition.type)
        if isinstance(child, GraphQLObjectType):
            inner = self.selection_set(child, entry.children, depth + 1, entry.width, nest)
            text = f"{text} {inner}"
        return text

    def usable(
        self, parent: GraphQLObjectType, name: str, definition: GraphQLField, depth: int, width: int
    ) -> bool:
        if _is_object(definition) and depth >= MAX_DEPTH:
            return False
        if _fixed_factor(parent, name, definition) * width > MAX_WIDTH:
            return False
        return all(
            _has_pool(arg_name) or arg_name in self.pools or not _required(arg)
            for arg_name, arg in definition.args.items()
        )

    # -- arguments

    def arguments(
        self,
        parent: GraphQLObjectType,
        name: str,
        definition: GraphQLField,
        depth: int,
        width: int,
    ) -> tuple[str, int]:
        """The argument text of a field and the width of its selection set."""
        written = []
        factor = _fixed_factor(parent, name, definition)
        for arg_name, arg in definition.args.items():
            if arg_name == "first" or (arg_name == "limit" and self.pools):
                argument = self.first(arg, depth, width)
                value = arg.default_value if argument.value is None else argument.value
                factor = value if isinstance(value, int) else 0
                if name == "reviews":
                    factor = min(factor, 8)  # no product has more reviews than that
            else:
                make = self.pools.get(arg_name)
                pool = make(name) if make is not None else _pool(name, arg_name)
                if pool is None:
                    continue
                argument = self.argument(arg, pool)
                if arg_name == "ids":
                    value = argument.value
                    factor = len(value) if isinstance(value, list) else 1
            if argument.text is not None:
                written.append(f"{arg_name}: {argument.text}")
        text = f"({', '.join(written)})" if written else ""
        return text, width * max(factor, 1)

    def first(self, arg: GraphQLArgument, depth: int, width: int) -> _Argument:
        limit = MAX_WIDTH // width
        if depth > 1 or width > 1:
            limit = min(limit, NESTED_FIRST)
        options = st.sampled_from([n for n in FIRSTS if n <= limit])
        default = arg.default_value
        may_default = not isinstance(default, int) or default <= limit
        return self.argument(arg, options, may_default=may_default)

    def argument(
        self, arg: GraphQLArgument, values: st.SearchStrategy[Any], may_default: bool = True
    ) -> _Argument:
        """A value written inline or through a variable, or the argument's default used.

        `may_default`: whether the argument's own default (when it has one) may apply.
        """
        value = self.draw(values)
        modes = ["literal", "variable"]
        if may_default and not _required(arg):
            modes.append("omitted")
            if not is_non_null_type(arg.type):
                modes.append("null")
        mode = self.pick(modes)
        if mode == "omitted":
            return _Argument(None, None)
        if mode == "null":
            return _Argument("null", None)
        if mode == "literal":
            return _Argument(self.literal(arg.type, value), value)
        name = self.fresh("v")
        declared = str(arg.type)
        nullable = str(get_nullable_type(arg.type))
        form = self.pick(("plain", "default", "default overridden", "left out"))
        if form == "default":
            # A nullable variable with a default fits a non-null argument too.
            self.definitions.append(f"${name}: {nullable} = {self.literal(arg.type, value)}")
            return _Argument(f"${name}", value)
        if form == "default overridden":
            default = self.literal(arg.type, self.draw(values))
            self.definitions.append(f"${name}: {nullable} = {default}")
        elif form == "left out" and may_default and not is_non_null_type(arg.type):
            # An absent variable without default: the argument's own default applies.
            self.definitions.append(f"${name}: {declared}")
            return _Argument(f"${name}", None)
        else:
            self.definitions.append(f"${name}: {declared}")
        self.values[name] = self.variable_value(value)
        return _Argument(f"${name}", value)

    def variable_value(self, value: Any) -> Any:
        if isinstance(value, str) and _plain_number(value) and self.chance(15):
            return int(value)  # ID input coerces integers too
        return value

    def literal(self, type_: GraphQLInputType, value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, list):
            item_type = get_nullable_type(type_)
            assert is_list_type(item_type)
            items = [self.literal(item_type.of_type, v) for v in value]
            if len(items) == 1 and self.chance(20):
                return items[0]  # a single value where a list is expected is a list of one
            return f"[{', '.join(items)}]"
        if isinstance(get_named_type(type_), GraphQLEnumType):
            return str(value)  # an enum value is written bare
        if get_named_type(type_).name == "ID" and _plain_number(value) and self.chance(15):
            return value  # an integer literal is a valid ID
        return json.dumps(value)

    def directives(self) -> str:
        if not self.chance(self.directive_percent):
            return ""
        directive = self.pick(("include", "skip"))
        condition = self.pick((True, False))
        if self.chance(50):
            # A few flags, reused as a client reuses its feature flags (one in ten fresh, so
            # that operations with more switches than the fast path plans are drawn too).
            name = self.fresh("b") if self.chance(10) else self.pick(FLAGS)
            if name not in self.flags:
                self.flags.add(name)
                if self.chance(50):
                    self.definitions.append(f"${name}: Boolean!")
                    self.values[name] = condition
                else:
                    self.definitions.append(f"${name}: Boolean = {json.dumps(condition)}")
            return f" @{directive}(if: ${name})"
        return f" @{directive}(if: {json.dumps(condition)})"


_PERCENT = st.integers(0, 99)


@cache
def _index(size: int) -> st.SearchStrategy[int]:
    return st.integers(0, size - 1)


def _is_object(definition: GraphQLField) -> bool:
    return isinstance(get_named_type(definition.type), GraphQLObjectType)


def _required(arg: GraphQLArgument) -> bool:
    return is_non_null_type(arg.type) and arg.default_value is Undefined


def _plain_number(value: str) -> bool:
    return value.isdigit() and not value.startswith("0")


def _fixed_factor(parent: GraphQLObjectType, name: str, definition: GraphQLField) -> int:
    """How many times a list field without `first` runs its selection set (a guess)."""
    if not is_list_type(get_nullable_type(definition.type)) or "first" in definition.args:
        return 1
    if parent.name.endswith("Connection"):
        return 1  # `nodes` and `edges`: the connection's `first` counted already
    if "ids" in definition.args:
        return 1  # counted from the ids drawn
    return ITEMS_PER_ORDER


def _ids(field_name: str) -> st.SearchStrategy[str]:
    """Mostly ids that exist (one in thirteen does not, or is no id at all)."""
    known = KNOWN_IDS + OWNED_ORDERS if field_name == "order" else KNOWN_IDS
    return st.sampled_from(known + MISSING_IDS + INVALID_IDS)


def _id_lists(field_name: str) -> st.SearchStrategy[list[str]]:
    """Up to five ids, often repeated, sometimes missing or invalid."""
    return st.lists(st.sampled_from((*KNOWN_IDS[:8], *MISSING_IDS, *INVALID_IDS[:1])), max_size=5)


_POOLS: dict[str, Callable[[str], st.SearchStrategy[Any]]] = {
    "id": _ids,
    "ids": _id_lists,
    "after": lambda _: st.sampled_from(CURSORS),
    "category": lambda _: st.sampled_from(CATEGORIES),
}


def _has_pool(arg_name: str) -> bool:
    return arg_name == "first" or arg_name in _POOLS


@cache
def _pool(field_name: str, arg_name: str) -> st.SearchStrategy[Any] | None:
    if arg_name == "first":
        return st.sampled_from(FIRSTS)
    make = _POOLS.get(arg_name)
    return None if make is None else make(field_name)
