"""Documents that cannot pin the event loop: merged selections and a field count, before
validation (SPEC section 15, "Documents").

graphql-core's overlap rule compares every pair of fields that share a response name, so a
field repeated a thousand times under the token cap costs a million comparisons. `merged`
returns the document with each selection set holding every distinct selection once (copies of
the nodes that change, the parsed ones where nothing merges, which is most of a real query):

- fields with the same alias, name, arguments and directives become one field whose selection
  set is the union of theirs (a leaf and a field with a selection set are never merged, so
  `ScalarLeafsRule` still sees both);
- inline fragments with the same type condition and directives become one;
- a fragment spread repeated with the same directives is kept once.

The merged document is valid exactly when the original is (the merged selections are checked
against the same parent types, and pairs of fields the overlap rule compared in the original
are still compared, inside the union), so validation runs on it; execution keeps the original,
so answers, error locations and costs are what they were.

`count_fields` counts the field selections of the merged document with fragments expanded
(a field inside a fragment spread three times counts three times), parents included, each
fragment measured once, saturating just past the limit, and reused at every spread: a fragment
fan-out of 4^12 fields costs one step per selection written, and a chain of thousands of
fragments is followed without recursion. A fragment met again while it is being measured (a
cycle) counts as nothing there: validation refuses the cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    EnumValueNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)

MAX_FIELDS = 1000

Key = tuple[Any, ...]


def merged(document: DocumentNode) -> DocumentNode:
    """`document` with each selection set holding each distinct selection once: a copy of
    what merges, the parsed nodes themselves where nothing does (never changed in place)."""
    definitions = []
    changed = False
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            selection_set = merge_selection_set([definition.selection_set])
            if selection_set is not definition.selection_set:
                definition = replace(definition, selection_set=selection_set)
                changed = True
        definitions.append(definition)
    return replace(document, definitions=tuple(definitions)) if changed else document


def merge_selection_set(sets: Sequence[SelectionSetNode]) -> SelectionSetNode:
    """One selection set holding the selections of `sets`, each distinct one once; the one of
    `sets` itself when it is alone and nothing in it merges."""
    groups: dict[Key, list[SelectionNode]] = {}
    for selection_set in sets:
        for selection in selection_set.selections:
            groups.setdefault(selection_key(selection), []).append(selection)
    changed = len(sets) > 1 or len(groups) < len(sets[0].selections)
    selections: list[SelectionNode] = []
    for same in groups.values():
        first = same[0]
        if isinstance(first, FieldNode | InlineFragmentNode) and first.selection_set:
            below = [
                s.selection_set
                for s in same
                if isinstance(s, FieldNode | InlineFragmentNode) and s.selection_set
            ]
            selection_set = merge_selection_set(below)
            if selection_set is not first.selection_set:
                first = replace(first, selection_set=selection_set)
                changed = True
        selections.append(first)
    return replace(sets[0], selections=tuple(selections)) if changed else sets[0]


def selection_key(selection: SelectionNode) -> Key:
    """Equal for selections that may merge into one."""
    directives = directives_key(selection.directives) if selection.directives else ()
    if isinstance(selection, FieldNode):
        return (
            "field",
            selection.alias.value if selection.alias else None,
            selection.name.value,
            arguments_key(selection.arguments) if selection.arguments else (),
            directives,
            selection.selection_set is None,
        )
    if isinstance(selection, InlineFragmentNode):
        condition = selection.type_condition
        return ("inline", condition.name.value if condition else None, directives)
    if isinstance(selection, FragmentSpreadNode):
        arguments = arguments_key(getattr(selection, "arguments", None))
        return ("spread", selection.name.value, arguments, directives)
    return ("other", id(selection))  # pragma: no cover - graphql-core has no other kind


def arguments_key(arguments: Iterable[ArgumentNode] | None) -> Key:
    """Arguments as graphql-core's overlap rule compares them: by name, in any order."""
    pairs = [(a.name.value, value_key(a.value)) for a in arguments or ()]
    return tuple(sorted(pairs, key=lambda pair: pair[0]))


def directives_key(directives: Iterable[DirectiveNode] | None) -> Key:
    return tuple((d.name.value, arguments_key(d.arguments)) for d in directives or ())


def value_key(value: ValueNode) -> Any:
    """A hashable image of a literal: equal exactly for equal literals."""
    if isinstance(value, VariableNode):
        return ("$", value.name.value)
    if isinstance(value, IntValueNode | FloatValueNode | StringValueNode | EnumValueNode):
        return (type(value).__name__, value.value)
    if isinstance(value, BooleanValueNode):
        return ("bool", value.value)
    if isinstance(value, NullValueNode):
        return ("null",)
    if isinstance(value, ListValueNode):
        return ("list", tuple(value_key(v) for v in value.values))
    if isinstance(value, ObjectValueNode):
        return ("object", tuple((f.name.value, value_key(f.value)) for f in value.fields))
    return ("other", id(value))  # pragma: no cover - graphql-core has no other kind


def _shallow(selection_set: SelectionSetNode) -> tuple[int, list[str]]:
    """The fields of a selection set, nested ones included, and the fragments it spreads
    (as often as it spreads them); iterative, as chains of fragments can be long."""
    fields = 0
    spreads: list[str] = []
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                fields += 1
                if selection.selection_set is not None:
                    stack.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                spreads.append(selection.name.value)
    return fields, spreads


class _Count:
    """Field selections with fragments expanded, saturating just past `limit`."""

    def __init__(self, document: DocumentNode, limit: int) -> None:
        self.limit = limit
        self.fragments = {
            d.name.value: _shallow(d.selection_set)
            for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, int] = {}

    def spreads(self, fields: int, spreads: list[str]) -> int:
        """`fields` plus what `spreads` expand to, each fragment measured once."""
        for name in spreads:
            self.fragment(name)
        return min(fields + sum(self.memo.get(name, 0) for name in spreads), self.limit + 1)

    def fragment(self, name: str) -> None:
        """Measure `name` and the fragments below it, depth first without recursion; a
        fragment met again while being measured (a cycle) counts as nothing there."""
        measuring: set[str] = set()
        stack = [name]
        while stack:
            current = stack[-1]
            if current in self.memo or current not in self.fragments:
                self.memo.setdefault(current, 0)
                stack.pop()
            elif current not in measuring:
                measuring.add(current)
                below = self.fragments[current][1]
                stack.extend(n for n in below if n not in self.memo and n not in measuring)
            else:
                fields, below = self.fragments[current]
                total = fields + sum(self.memo.get(n, 0) for n in below)
                self.memo[current] = min(total, self.limit + 1)
                measuring.discard(current)
                stack.pop()


def count_fields(document: DocumentNode, limit: int = MAX_FIELDS) -> int:
    """Field selections of every operation with fragments expanded, parents included, plus
    those of fragments no operation spreads (validation visits them too); a number past
    `limit` once the count gets there."""
    count = _Count(document, limit)
    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total += count.spreads(*_shallow(definition.selection_set))
            if total > limit:
                return limit + 1
    for name in count.fragments:
        if name not in count.memo:
            count.fragment(name)
            total += count.memo[name]
            if total > limit:
                return limit + 1
    return total
