"""Fields of graphql-core types that the execution fast path runs natively.

A graph written with strawberry declares its batched fields with `@batched` (`bff.graph.batch`);
a graph built straight on graphql-core types (generated sources, the engine's own fields)
declares them here, with the same two kinds:

- `batch_field`: a batch form `form(ctx, parents, **arguments) -> list` (one value or exception
  per parent, sync or async), run once per level on the fast path and once per parent by
  graphql-core, with the same `checks` (objects with `before(principal, parent)` and
  `after(principal, value)`, like `bff.graph.permissions.Requires`) on both;
- `read_field`: a value read from the parent (`read(parent)`), with no I/O.

Both keep their declaration in `GraphQLField.extensions` (`BATCH`, `READ`), where the planner
finds it, and a graphql-core `resolve` that does the same, so both paths answer alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from graphql import GraphQLArgument, GraphQLField, GraphQLOutputType

BATCH = "bff.batch"  # GraphQLField.extensions key: a `BatchResolver`
READ = "bff.read"  # GraphQLField.extensions key: `read(parent) -> value`

BatchForm = Callable[..., "list[Any] | Awaitable[list[Any]]"]  # (ctx, parents, **arguments)


class Check(Protocol):
    def before(self, principal: Any, source: Any) -> None: ...

    def after(self, principal: Any, result: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class BatchResolver:
    """How a field is computed for many parents at once."""

    form: BatchForm
    checks: tuple[Check, ...] = ()  # run in this order before, in reverse after
    python_names: Mapping[str, str] | None = None  # GraphQL argument -> keyword (None: same)

    def keywords(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        names = self.python_names
        if names is None:
            return dict(arguments)
        return {names.get(name, name): value for name, value in arguments.items()}


def batch_field(
    type_: GraphQLOutputType,
    form: BatchForm,
    *,
    args: Mapping[str, GraphQLArgument] | None = None,
    checks: Sequence[Check] = (),
    python_names: Mapping[str, str] | None = None,
    description: str | None = None,
) -> GraphQLField:
    """A field whose values `form` computes for all parents of a level."""
    batch = BatchResolver(form, tuple(checks), python_names)
    return GraphQLField(
        type_,
        args=dict(args or {}),
        resolve=per_parent(batch),
        description=description,
        extensions={BATCH: batch},
    )


def read_field(
    type_: GraphQLOutputType, read: Callable[[Any], Any], *, description: str | None = None
) -> GraphQLField:
    """A field read from its parent: `read(parent)`."""

    def resolve(parent: Any, info: Any, **_: Any) -> Any:
        return read(parent)

    return GraphQLField(type_, resolve=resolve, description=description, extensions={READ: read})


def per_parent(batch: BatchResolver) -> Callable[..., Any]:
    """graphql-core's resolver of a batch field: the form for one parent, checks included."""
    form, checks = batch.form, batch.checks

    def first(principal: Any, values: list[Any]) -> Any:
        value = values[0]
        if isinstance(value, Exception):
            raise value
        for check in reversed(checks):
            value = check.after(principal, value)
        return value

    if inspect.iscoroutinefunction(form):

        async def resolve_async(root: Any, info: Any, **arguments: Any) -> Any:
            context = info.context
            for check in checks:
                check.before(context.principal, root)
            values = await form(context, (root,), **batch.keywords(arguments))
            return first(context.principal, values)

        return resolve_async

    def resolve(root: Any, info: Any, **arguments: Any) -> Any:
        context = info.context
        for check in checks:
            check.before(context.principal, root)
        values = form(context, (root,), **batch.keywords(arguments))
        if inspect.isawaitable(values):

            async def later() -> Any:
                return first(context.principal, await values)

            return later()
        return first(context.principal, values)

    return resolve
