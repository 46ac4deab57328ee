"""Which operations the fast path runs; anything else is left to graphql-core, unchanged.

Decided once per document and operation, before any plan is built: queries and mutations
whose only directives are `@skip`/`@include` (on fields, fragment spreads and inline
fragments, with a literal or a variable as `if`), whose fragments declare no variables and
that ask no introspection beyond `__typename`. Abstract types are refused while planning
(`shapes.Unsupported`). `@defer` is allowed and has no effect here: the fast path answers in
one piece, as a client that does not read multipart parts is answered
(`bff.graphql.incremental` runs deferred operations for those that do).

A `@skip`/`@include` whose `if` is a variable is a switch: the planner makes one plan per
combination of the switches' values (at most `2 ** MAX_SWITCHES`), and each execution picks
the one its variables select.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)

INTROSPECTION = frozenset({"__schema", "__type"})
SUPPORTED = frozenset({OperationType.QUERY, OperationType.MUTATION})
CONDITIONS = frozenset({"skip", "include"})
IN_ONE_PIECE = frozenset({"defer"})  # directives the fast path ignores: one complete answer
MAX_SWITCHES = 4  # variables deciding @skip/@include: at most 16 plans per operation


@dataclass(slots=True)
class Scan:
    """What the fast path needs to know of an operation before planning it."""

    reason: str | None = None  # why graphql-core must run it, or None
    switches: list[str] = field(default_factory=list)  # variables of @skip/@include, in order
    defers: bool = False  # a `@defer` is written somewhere
    defer_variables: bool = False  # and one of them reads a variable (`if: $later`)


def choose_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation graphql-core would run, or `None` when it would answer an error."""
    chosen = None
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if operation_name is None:
            if chosen is not None:
                return None
            chosen = definition
        elif definition.name is not None and definition.name.value == operation_name:
            chosen = definition
    return chosen


def scan(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> Scan:
    """Whether the fast path can run `operation` (`reason` is None) and its switches."""
    found = Scan()
    if operation.operation not in SUPPORTED:
        found.reason = f"{operation.operation.value} operation"
    elif operation.directives or any(v.directives for v in operation.variable_definitions or ()):
        found.reason = "operation directive"
    else:
        found.reason = _selections(operation.selection_set, fragments, set(), found)
    if found.reason is None and len(found.switches) > MAX_SWITCHES:
        found.reason = f"more than {MAX_SWITCHES} variables in @skip/@include"
    return found


def unsupported(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> str | None:
    """Why the fast path cannot run `operation`, or `None` when it can."""
    return scan(operation, fragments).reason


def _conditions(directives: tuple[DirectiveNode, ...] | None, found: Scan) -> str | None:
    """Check the directives of one selection; a variable `if` becomes a switch."""
    for directive in directives or ():
        name = directive.name.value
        if name in IN_ONE_PIECE:
            found.defers = True
            if any(isinstance(a.value, VariableNode) for a in directive.arguments or ()):
                found.defer_variables = True
            continue
        if name not in CONDITIONS:
            return f"directive @{name}"
        for argument in directive.arguments or ():
            value = argument.value
            if isinstance(value, VariableNode):
                if value.name.value not in found.switches:
                    found.switches.append(value.name.value)
            elif not isinstance(value, BooleanValueNode):
                return f"@{name} argument"  # unreachable after validation
    return None


def _selections(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
    found: Scan,
) -> str | None:
    for selection in selection_set.selections:
        if selection.directives:
            reason = _conditions(selection.directives, found)
            if reason is not None:
                return reason
        inner: SelectionSetNode | None
        if isinstance(selection, FieldNode):
            if selection.name.value in INTROSPECTION:
                return "introspection"
            inner = selection.selection_set
        elif isinstance(selection, InlineFragmentNode):
            inner = selection.selection_set
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if getattr(selection, "arguments", None):
                return "fragment arguments"
            if name in seen:
                continue
            seen.add(name)
            fragment = fragments.get(name)
            if fragment is None:
                return "unknown fragment"
            if fragment.directives or getattr(fragment, "variable_definitions", None):
                return "fragment variables or directives"
            inner = fragment.selection_set
        else:
            return "unknown selection"
        if inner is not None:
            reason = _selections(inner, fragments, seen, found)
            if reason is not None:
                return reason
    return None
