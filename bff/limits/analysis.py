"""Query analysis: depth, aliases and cost of one operation, before anything runs.

SPEC section 10: depth counts selection-set nesting with fragments expanded (a root field is
depth 1); every field costs 1, and a field with a `first` argument (lists and connections)
multiplies the cost of everything below it by `first`, or by the argument's default. SPEC
section 15: a list field that takes a list argument (its batch of keys: `users(ids: [...])`,
`productIds`) multiplies what is below it by the length of that list, so a batch nested under
a list multiplies as a connection does; a field with both takes the larger. Checks run in
order depth (`QUERY_TOO_DEEP`), aliases, cost (both `QUERY_TOO_COMPLEX`); only the first
failing one is reported. A cost saturates at `MAX_COUNTED` (2^53 - 1, the largest integer a
JSON reader keeps exactly), far past any limit, so nesting `first: 2147483647` three times
still reports a number.

The walk is linear in the document: each fragment is measured once per walk and its result
reused at every spread, so a fragment "bomb" (fragments spreading fragments many times) is
counted in full without being expanded. It only ever runs on validated documents, where
fragment cycles cannot exist; a cycle that got through anyway fails the walk, not the process.
Introspection (`__schema`, `__type`) is not counted: it makes no upstream call, `max_tokens`
bounds it, and `server.introspection: false` turns it off.

Variables feeding a multiplier are read as coerced (`bff.limits.query_limits`): an `Int` past
32 bits never gets here. Results are cached per operation of a cached document
(`OperationShape`): depth and aliases never change, the cost only with the variables feeding
a multiplier (as counts: an `Int`, or a list's length), so it is cached per distinct tuple of
those counts.

Fields generated from OpenAPI documents say how they count in `GraphQLField.extensions`
(`LIST_SIZE`): the name of the argument that bounds the list (`first` or `limit`; absent or
unset: its default, else `limits.default_list_size`), or `""` for a list with no such
argument, which counts `default_list_size` (SPEC section 12).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
    value_from_ast_untyped,
)

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
COST_CACHE_SIZE = 64  # distinct tuples of counting variables remembered per operation
MAX_COUNTED = 2**53 - 1  # costs saturate here: JSON readers keep integers exact up to it
LIST_SIZE = "bff.list_size"  # GraphQLField.extensions key: the argument bounding a list


@dataclass(frozen=True, slots=True)
class Measure:
    """Depth, alias count and cost of a selection set (or a whole operation)."""

    depth: int
    aliases: int
    cost: int


class CycleError(ValueError):
    """A fragment spreads itself: validation should have refused the document."""


@dataclass(slots=True)
class OperationShape:
    """What never changes for one operation, and its costs by the variables feeding a
    multiplier (`first`, or a list argument: `first_variables` names them all)."""

    depth: int
    aliases: int
    first_variables: tuple[str, ...]
    costs: dict[tuple[int | None, ...], int] = field(default_factory=dict)


class _Walk:
    """One measurement of an operation with one set of variable values."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, int | None],
        default_list_size: int = 10,
    ) -> None:
        self.schema = schema
        self.default_list_size = default_list_size
        self.fragments = fragments
        self.variables = variables
        self.first_variables: set[str] = set()
        self.memo: dict[str, Measure | None] = {}

    def selection_set(self, node: SelectionSetNode, parent: GraphQLNamedType | None) -> Measure:
        depth = aliases = cost = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                measure = self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                scope = self.schema.get_type(condition.name.value) if condition else parent
                measure = self.selection_set(selection.selection_set, scope)
            elif isinstance(selection, FragmentSpreadNode):
                measure = self.spread(selection.name.value)
            else:  # pragma: no cover - graphql-core has no other selection kind
                continue
            depth = max(depth, measure.depth)
            aliases += measure.aliases
            cost = min(cost + measure.cost, MAX_COUNTED)
        return Measure(depth, aliases, cost)

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        name = node.name.value
        if name in INTROSPECTION_ROOTS:
            return Measure(0, 0, 0)
        aliases = 1 if node.alias is not None else 0
        if node.selection_set is None:
            return Measure(1, aliases, 1)
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        child = get_named_type(definition.type) if definition is not None else None
        below = self.selection_set(node.selection_set, child)
        multiplier = self.multiplier(node, definition)
        cost = min(1 + multiplier * below.cost, MAX_COUNTED)
        return Measure(1 + below.depth, aliases + below.aliases, cost)

    def spread(self, name: str) -> Measure:
        if name in self.memo:
            measure = self.memo[name]
            if measure is None:
                raise CycleError(f"fragment {name} spreads itself")
            return measure
        fragment = self.fragments.get(name)
        if fragment is None:
            return Measure(0, 0, 0)
        self.memo[name] = None  # in progress: seeing it again is a cycle
        scope = self.schema.get_type(fragment.type_condition.name.value)
        measure = self.selection_set(fragment.selection_set, scope)
        self.memo[name] = measure
        return measure

    def multiplier(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """How many items the field asks for: its `first` (a generated field's bounding
        argument, `LIST_SIZE`), the length of its list argument when it returns a list, the
        larger of both; 1 when it has neither."""
        if definition is None:
            return 1
        counts = []
        extensions = definition.extensions
        if extensions and LIST_SIZE in extensions:
            bound = extensions[LIST_SIZE]
            if bound in definition.args:
                counts.append(self.first(node, definition, bound, self.default_list_size))
            else:
                counts.append(self.default_list_size)
        elif "first" in definition.args:
            counts.append(self.first(node, definition, "first", 1))
        if is_list_type(get_nullable_type(definition.type)):
            counts.extend(self.list_lengths(node, definition))
        return max(counts, default=1)

    def first(self, node: FieldNode, definition: GraphQLField, bound: str, unset: int) -> int:
        """The field's `bound` argument (`first`), or its default, else `unset`."""
        value: int | None = None
        for argument in node.arguments or ():
            if argument.name.value != bound:
                continue
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                value = self.variable(argument.value)
        if value is None:
            default = default_of(definition.args[bound])
            value = default if isinstance(default, int) and not isinstance(default, bool) else unset
        return max(value, 0)

    def list_lengths(self, node: FieldNode, definition: GraphQLField) -> list[int]:
        """The lengths of the list arguments the field takes (its batches of keys), as
        given, or their defaults."""
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        lengths = []
        for name, argument in definition.args.items():
            if not is_list_type(get_nullable_type(argument.type)):
                continue
            value = given.get(name)
            length: int | None
            if value is None:
                default = default_of(argument)
                length = len(default) if isinstance(default, list) else None
            elif isinstance(value, ListValueNode):
                length = len(value.values)
            elif isinstance(value, NullValueNode):
                length = 0
            elif isinstance(value, VariableNode):
                length = self.variable(value)
            else:
                length = 1  # one item stands for a list of one (input coercion)
            if length is not None:
                lengths.append(length)
        return lengths

    def variable(self, node: VariableNode) -> int | None:
        name = node.name.value
        self.first_variables.add(name)
        return self.variables.get(name)


def default_of(argument: GraphQLArgument) -> Any:
    """An argument's default as a Python value: code-first schemas set `default_value`,
    schemas built from SDL a `default` literal; `None` when it has none."""
    if argument.default_value is not Undefined:
        return argument.default_value
    default = getattr(argument, "default", None)
    if default is None:
        return None
    if default.literal is not None:
        return value_from_ast_untyped(default.literal)
    return None if default.value is Undefined else default.value


def as_count(value: Any) -> int | None:
    """A coerced variable as a multiplier reads it: an integer, or a list's length."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list):
        return len(value)
    return None


def counts(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, int | None]:
    """The coerced variables `names` as counts (absent ones too: `None`)."""
    return {name: as_count(values.get(name)) for name in names}


def measure(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variables: dict[str, int | None],
    default_list_size: int = 10,
) -> tuple[Measure, tuple[str, ...]]:
    """Depth, aliases and cost of `operation`, and the variables its cost depends on."""
    root = schema.get_root_type(operation.operation)
    walk = _Walk(schema, fragments, variables, default_list_size)
    result = walk.selection_set(operation.selection_set, root)
    return result, tuple(sorted(walk.first_variables))
