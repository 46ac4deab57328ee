"""Which operations the fast path runs; anything else is left to graphql-core, unchanged.

Decided once per document and operation, before any plan is built: queries and mutations
whose selections carry no directive at all (no `@skip`/`@include`, `@defer`/`@stream` or
operation directives), whose fragments declare no variables and that ask no introspection
beyond `__typename`. Abstract types are refused while planning (`shapes.Unsupported`).
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

INTROSPECTION = frozenset({"__schema", "__type"})
SUPPORTED = frozenset({OperationType.QUERY, OperationType.MUTATION})


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


def unsupported(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> str | None:
    """Why the fast path cannot run `operation`, or `None` when it can."""
    if operation.operation not in SUPPORTED:
        return f"{operation.operation.value} operation"
    if operation.directives or any(v.directives for v in operation.variable_definitions or ()):
        return "operation directive"
    return _selections(operation.selection_set, fragments, set())


def _selections(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> str | None:
    for selection in selection_set.selections:
        if selection.directives:
            return "directive"
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
            reason = _selections(inner, fragments, seen)
            if reason is not None:
                return reason
    return None
