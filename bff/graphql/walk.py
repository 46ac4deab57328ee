"""graphql-core's `validate`, with its rules driven by a walk that calls only what listens.

graphql-core validates by `visit(document, TypeInfoVisitor(type_info, ParallelVisitor(rules)))`:
for every node, names included, the generic visitor keeps its edit stack, `TypeInfo` looks its
method up by name, and the parallel visitor loops over all thirty rules, most of which do not
listen to that kind. On a document at the token cap that dispatch costs more than the rules'
own work. `validate` sets up the same context, rules and fragment-nesting guard as
graphql-core's, then walks the document itself: per node kind, the `TypeInfo` methods and the
rules' enter and leave functions (as `get_enter_leave_for_kind` gives them) are listed once,
and each is called with the arguments `visit` passes (`node, key, parent, path, ancestors`,
the same lists), with the parallel visitor's `SKIP` and `BREAK` per rule. A node of a kind
nobody listens to, with nothing below it (a name), is not visited at all. Same calls, in the
same order: same errors, in the same order.

`UniqueDirectivesPerLocationRule` listens to every node (a generic `enter` that returns at once
where the node has no `directives`); it is called only on nodes that hold directives, when its
source still starts that way.

What this relies on (graphql-core's validation context, its fragment-nesting visitor and key
map, not all public) is checked at import; where it moved, or a rule returns anything but
`None`, `SKIP` or `BREAK` (an edit), graphql-core's own `validate` runs instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any

import graphql
from graphql import (
    BREAK,
    SKIP,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    Node,
    TypeInfo,
    assert_valid_schema,
)
from graphql.pyutils import RefMap
from graphql.validation import ASTValidationRule, UniqueDirectivesPerLocationRule
from graphql.validation.validation_context import ValidationContext

try:
    from graphql.validation.validate import (
        FragmentNestingVisitor,
        ValidationAbortedError,
        query_document_keys_to_validate,
    )
except ImportError:  # pragma: no cover - another graphql-core release
    WALKABLE = False
else:
    WALKABLE = True

# the caches of `ValidationContext` keyed by nodes (empty dicts when it is made)
CONTEXT_CACHES = (
    "_fragment_spreads",
    "_recursively_referenced_fragments",
    "_variable_usages",
    "_recursive_variable_usages",
)
MAX_ERRORS = 100  # graphql-core's default
ABORTED = "Too many validation errors, error limit reached. Validation aborted."

Handler = Callable[..., Any]


class Unusual(Exception):
    """A rule returned an edit: graphql-core's own `validate` takes over."""


def _node_classes() -> dict[str, type[Node]]:
    classes: dict[str, type[Node]] = {}
    stack: list[type[Node]] = [Node]
    while stack:
        cls = stack.pop()
        kind = getattr(cls, "kind", None)
        if isinstance(kind, str) and kind != "ast":
            classes[kind] = cls
        stack.extend(cls.__subclasses__())
    return classes


def _directives_checked_first() -> bool:
    """Whether `UniqueDirectivesPerLocationRule.enter` still returns at once on a node without
    `directives` (read from its source: graphql-core gives no other way to know)."""
    try:
        source = inspect.getsource(UniqueDirectivesPerLocationRule.enter)
    except (OSError, TypeError):  # pragma: no cover - no source installed
        return False
    body = [line.strip() for line in source.splitlines() if line.strip()]
    opening = 'directives = getattr(node, "directives", None)'
    start = next((i for i, line in enumerate(body) if line == opening), None)
    return start is not None and body[start + 1 : start + 3] == ["if not directives:", "return"]


def _context_fits() -> bool:
    parameters = list(inspect.signature(ValidationContext.__init__).parameters)
    expected = ["self", "schema", "ast", "type_info", "on_error", "hide_suggestions"]
    return parameters[: len(expected)] == expected


NODE_CLASSES = _node_classes()
WITHOUT_DIRECTIVES = frozenset(
    kind for kind, cls in NODE_CLASSES.items() if "directives" not in getattr(cls, "keys", ())
)
PRUNE_DIRECTIVES_RULE = WALKABLE and _directives_checked_first()
WALKABLE = WALKABLE and _context_fits()


class _Kind:
    """What listens to one node kind: `TypeInfo`'s methods, and each rule's functions;
    `plain` the enter functions for a node of this kind without directives, when they are
    fewer (`UniqueDirectivesPerLocationRule` does nothing there), else `None`."""

    __slots__ = (
        "enter_info",
        "entering",
        "enters",
        "keys",
        "leave_info",
        "leaves",
        "leaving",
        "plain",
        "silent",
    )

    def __init__(self, kind: str, type_info: TypeInfo, visitors: list[Any]) -> None:
        self.enter_info: Handler | None = getattr(type_info, "enter_" + kind, None)
        self.leave_info: Handler | None = getattr(type_info, "leave_" + kind, None)
        enters: list[tuple[int, Handler]] = []
        plain: list[tuple[int, Handler]] = []
        leaves: list[tuple[int, Handler]] = []
        for index, visitor in enumerate(visitors):
            enter, leave = visitor.get_enter_leave_for_kind(kind)
            directives_only = (
                PRUNE_DIRECTIVES_RULE
                and type(visitor) is UniqueDirectivesPerLocationRule
                and enter == visitor.enter
            )
            if enter and not (directives_only and kind in WITHOUT_DIRECTIVES):
                enters.append((index, enter))
                if not directives_only:
                    plain.append((index, enter))
            if leave:
                leaves.append((index, leave))
        self.enters = tuple(enters)
        self.plain = tuple(plain) if len(plain) < len(enters) else None
        self.leaves = tuple(leaves)
        self.keys: tuple[str, ...] = query_document_keys_to_validate.get(kind, ())
        self.entering = bool(self.enter_info or enters)
        self.leaving = bool(self.leave_info or leaves)
        self.silent = not (self.entering or self.leaving or self.keys)


class _Walk:
    """One walk of a document, as `visit` with graphql-core's validation visitors makes it."""

    def __init__(self, type_info: TypeInfo, visitors: list[Any]) -> None:
        self.type_info = type_info
        self.visitors = visitors
        self.kinds: dict[str, _Kind] = {}
        self.skipping: list[Any] = [None] * len(visitors)
        # (node, rule) for each rule skipping the subtree of that node, innermost last: a skip
        # ends where its node is left, and nodes are left innermost first
        self.skips: list[tuple[Node, int]] = []
        self.path: list[Any] = []
        self.ancestors: list[Any] = []

    def kind(self, kind: str) -> _Kind:
        found = self.kinds.get(kind)
        if found is None:
            found = self.kinds[kind] = _Kind(kind, self.type_info, self.visitors)
        return found

    def enter(self, node: Node, kind: _Kind, key: Any, parent: Any) -> None:
        if kind.enter_info:
            kind.enter_info(node)
        skipping = self.skipping
        plain = kind.plain
        enters = kind.enters if plain is None or node.directives else plain  # type: ignore[attr-defined]
        for index, enter in enters:
            if not skipping[index]:
                result = enter(node, key, parent, self.path, self.ancestors)
                if result is None:
                    continue
                if result is SKIP or result is False:
                    skipping[index] = node
                    self.skips.append((node, index))
                elif result is BREAK or result is True:
                    skipping[index] = BREAK
                else:
                    raise Unusual

    def leave(self, node: Node, kind: _Kind, key: Any, parent: Any) -> None:
        skipping = self.skipping
        for index, leave in kind.leaves:
            if not skipping[index]:
                result = leave(node, key, parent, self.path, self.ancestors)
                if result is None or result is SKIP or result is False:
                    continue
                if result is BREAK or result is True:
                    skipping[index] = BREAK
                else:
                    raise Unusual
        skips = self.skips
        while skips and skips[-1][0] is node:
            skipping[skips.pop()[1]] = None
        if kind.leave_info:
            kind.leave_info()

    def run(self, root: DocumentNode) -> None:
        """Depth first without recursion: a frame is a node or a tuple of nodes being walked,
        with its key and parent, and the position of the next child to walk. A node whose
        kind has no enter (or leave) functions is not entered (or left), unless a rule skips
        a subtree, which its leave ends."""
        path, ancestors, kinds = self.path, self.ancestors, self.kinds
        enter, leave = self.enter, self.leave
        root_kind = self.kind(root.kind)
        enter(root, root_kind, None, None)
        # (node or tuple, its key, its parent, its _Kind or None for a tuple, next position)
        frames: list[list[Any]] = [[root, None, None, root_kind, 0]]
        while frames:
            frame = frames[-1]
            current, key, parent, kind, position = frame
            if kind is None:  # a tuple: its items, by index
                done = position >= len(current)
                child = None if done else current[position]
            else:
                keys = kind.keys
                done = position >= len(keys)
                child = None if done else getattr(current, keys[position], None)
            if done:
                frames.pop()
                if frames:
                    ancestors.pop()
                skips = self.skips
                if kind is not None and (kind.leaving or (skips and skips[-1][0] is current)):
                    leave(current, kind, key, parent)
                if path:
                    path.pop()
                continue
            frame[4] = position + 1
            if child is None:
                continue
            key = position if kind is None else kind.keys[position]
            if isinstance(child, tuple):
                if child:
                    path.append(key)
                    ancestors.append(current)
                    frames.append([child, key, current, None, 0])
                continue
            child_kind = kinds.get(child.kind) or self.kind(child.kind)
            if child_kind.silent:
                continue
            path.append(key)
            if child_kind.entering:
                enter(child, child_kind, key, current)
            ancestors.append(current)
            frames.append([child, key, current, child_kind, 0])


def by_identity(context: ValidationContext) -> None:
    """The context's caches keyed by node identity: a dict keyed by nodes hashes each key's
    whole subtree (nodes are frozen dataclasses), so looking an operation up hashes all of it,
    again at every lookup. One document holds each node once: same answers, as graphql-core's
    own `RefMap` gives its other caches."""
    for name in CONTEXT_CACHES:
        if getattr(context, name, None) == {}:
            setattr(context, name, RefMap())


def validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: Collection[type[ASTValidationRule]],
    *,
    hide_suggestions: bool = False,
) -> list[GraphQLError]:
    """graphql-core's `validate(schema, document, rules, hide_suggestions=...)`: the same
    errors, in the same order, for less dispatch."""
    if not WALKABLE:  # pragma: no cover - another graphql-core release
        return graphql.validate(schema, document, rules, hide_suggestions=hide_suggestions)
    assert_valid_schema(schema)
    errors: list[GraphQLError] = []
    type_info = TypeInfo(schema)

    def on_error(error: GraphQLError) -> None:
        if len(errors) >= MAX_ERRORS:
            raise ValidationAbortedError(ABORTED)
        errors.append(error)

    context = ValidationContext(schema, document, type_info, on_error, hide_suggestions)
    by_identity(context)
    visitors: list[Any] = [rule(context) for rule in rules]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if fragments:
        visitors.insert(0, FragmentNestingVisitor(fragments))
    try:
        _Walk(type_info, visitors).run(document)
    except Unusual:
        return graphql.validate(schema, document, rules, hide_suggestions=hide_suggestions)
    except ValidationAbortedError as error:
        error.__context__ = None
        errors.append(error.with_traceback(None))
    except RecursionError:
        errors.append(ValidationAbortedError("Validation aborted."))
    finally:
        release(visitors)
    return errors


def release(visitors: list[Any]) -> None:
    """Empty each rule's cache of its own bound methods (a reference cycle), so the rules and
    what they collected (the overlap rule's field maps) go when validation returns, not at the
    garbage collector's next full pass, which then walks every object of the process."""
    for visitor in visitors:
        cache = getattr(visitor, "enter_leave_map", None)
        if isinstance(cache, dict):
            cache.clear()
