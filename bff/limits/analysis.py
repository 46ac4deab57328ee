"""Query analysis: depth, aliases and cost of one operation, before anything runs.

SPEC section 10: depth counts selection-set nesting with fragments expanded (a root field is
depth 1); every field costs 1, and a field with a `first` argument (lists and connections)
multiplies the cost of everything below it by `first`, or by the argument's default. Checks run
in order depth (`QUERY_TOO_DEEP`), aliases, cost (both `QUERY_TOO_COMPLEX`); only the first
failing one is reported.

The walk is linear in the document: each fragment is measured once per walk and its result
reused at every spread, so a fragment "bomb" (fragments spreading fragments many times) is
counted in full without being expanded. It only ever runs on validated documents, where
fragment cycles cannot exist; a cycle that got through anyway fails the walk, not the process.
Introspection (`__schema`, `__type`) is not counted: it makes no upstream call, `max_tokens`
bounds it, and `server.introspection: false` turns it off.

Results are cached per operation of a cached document (`OperationShape`): depth and aliases
never change, the cost only with the variables that feed a `first` argument, so it is cached
per distinct tuple of those values.

Fields generated from OpenAPI documents say how they count in `GraphQLField.extensions`
(`LIST_SIZE`): the name of the argument that bounds the list (`first` or `limit`; absent or
unset: its default, else `limits.default_list_size`), or `""` for a list with no such
argument, which counts `default_list_size` (SPEC section 12).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
COST_CACHE_SIZE = 64  # distinct `first` variable tuples remembered per operation
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
    """What never changes for one operation, and its costs by the variables feeding `first`."""

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
            cost += measure.cost
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
        multiplier = self.first(node, definition)
        return Measure(1 + below.depth, aliases + below.aliases, 1 + multiplier * below.cost)

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

    def first(self, node: FieldNode, definition: GraphQLField | None) -> int:
        """The multiplier of a field: its `first` argument, 1 when it has none."""
        if definition is None:
            return 1
        bound = "first"
        if definition.extensions and LIST_SIZE in definition.extensions:
            bound = definition.extensions[LIST_SIZE]
            if bound not in definition.args:
                return self.default_list_size
        elif "first" not in definition.args:
            return 1
        value: int | None = None
        for argument in node.arguments or ():
            if argument.name.value != bound:
                continue
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                variable = argument.value.name.value
                self.first_variables.add(variable)
                value = self.variables.get(variable)
        if value is None:
            default = definition.args[bound].default_value
            generated = bool(definition.extensions) and LIST_SIZE in definition.extensions
            unbounded = self.default_list_size if generated else 1
            value = default if isinstance(default, int) else unbounded
        return max(value, 0)


def as_count(value: Any) -> int | None:
    """A raw JSON variable as `first` would see it; anything else counts as absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def variable_values(
    operation: OperationDefinitionNode, variables: dict[str, Any] | None
) -> dict[str, int | None]:
    """The operation's variables as counts, with the operation's own defaults filled in."""
    values: dict[str, int | None] = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if variables and name in variables:
            values[name] = as_count(variables[name])
        elif isinstance(definition.default_value, IntValueNode):
            values[name] = int(definition.default_value.value)
    return values


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
