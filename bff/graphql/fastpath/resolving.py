"""Getting a field's values for all parents of a level, one value or exception per parent.

- attributes are read in one pass;
- a batch form is called once for all parents (after each parent's `Requires` checks, which
  run when graphql-core would run them: at once for a synchronous field, with the I/O for an
  asynchronous one), and the checks on loaded values run per value afterwards;
- any other field calls its resolver per parent (directly when it can, `direct`; else its
  graphql-core `resolve`), with a `GraphQLResolveInfo` like graphql-core's, and its
  awaitables are gathered.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Sequence
from types import CoroutineType
from typing import Any

from graphql import GraphQLResolveInfo, GraphQLSchema
from graphql.execution.executor import default_field_resolver
from graphql.execution.values import VariableValues, get_argument_values
from graphql.pyutils import Path, gather_with_cancel, is_awaitable
from graphql.type.definition import GraphQLResolveInfoHelpers

from bff.graphql.fastpath.outcome import Pos, path_of
from bff.graphql.fastpath.plan import FieldPlan, OperationPlan

Pending = list[tuple[int, Awaitable[Any]]]


class Resolving:
    def __init__(
        self, schema: GraphQLSchema, plan: OperationPlan, context: Any, variables: VariableValues
    ) -> None:
        self.schema = schema
        self.plan = plan
        self.context = context
        self.principal: Any = getattr(context, "principal", None)
        self.variables = variables
        self._tracked: set[asyncio.Future[Any]] = set()
        # `track` holds the set, not the engine: a bound method here would make a cycle that
        # keeps every request's records alive until the cyclic collector's next full pass.
        track = functools.partial(_track, self._tracked)
        self.helpers = GraphQLResolveInfoHelpers(gather=_gather, track=track)

    def arguments(self, field: FieldPlan) -> dict[str, Any]:
        if field.args is not None:
            return field.args
        assert field.field_def is not None
        return get_argument_values(field.field_def, field.nodes[0], self.variables)

    @staticmethod
    def read(field: FieldPlan, sources: list[Any]) -> list[Any]:
        read = field.read
        assert read is not None
        try:
            return [read(source) for source in sources]
        except Exception:
            return [_read_one(read, source) for source in sources]

    def batch(self, field: FieldPlan, sources: list[Any]) -> list[Any] | Awaitable[list[Any]]:
        try:
            args = self.arguments(field)
        except Exception as error:
            return [error] * len(sources)
        if field.batch_is_async:
            return self._batch_later(field, args, sources)
        return self._batch_now(field, args, sources)

    def _batch_now(
        self, field: FieldPlan, args: dict[str, Any], sources: list[Any]
    ) -> list[Any] | Awaitable[list[Any]]:
        values, allowed, parents = self._check(field, sources)
        if not parents:
            return values
        found = self._call(field, args, parents)
        if is_awaitable(found):  # a plain function that hands back an awaitable
            return self._merge_later(field, values, allowed, found)
        return self._merge(field, values, allowed, found)

    async def _batch_later(
        self, field: FieldPlan, args: dict[str, Any], sources: list[Any]
    ) -> list[Any]:
        """An `async def` form: its checks, like strawberry's, run with its I/O; awaited
        here rather than in `_merge_later`, a coroutine frame fewer on each of its steps."""
        values, allowed, parents = self._check(field, sources)
        if not parents:
            return values
        found = self._call(field, args, parents)
        if type(found) is CoroutineType or is_awaitable(found):
            try:
                found = await found
            except Exception as error:
                found = [error] * len(parents)
        return self._merge(field, values, allowed, found)

    def _call(self, field: FieldPlan, args: dict[str, Any], parents: list[Any]) -> Any:
        """The batch form for the allowed parents: its values, an awaitable of them, or the
        error it raised for each."""
        try:
            form = field.batch
            assert form is not None
            return form(self.context, parents, **self._named(field, args))
        except Exception as error:
            return [error] * len(parents)

    async def _merge_later(
        self, field: FieldPlan, values: list[Any], allowed: list[int], found: Any
    ) -> list[Any]:
        try:
            found = await found
        except Exception as error:
            found = [error] * len(allowed)
        return self._merge(field, values, allowed, found)

    def _check(
        self, field: FieldPlan, sources: list[Any]
    ) -> tuple[list[Any], list[int], list[Any]]:
        """Each parent's `Requires` checks: refused ones get their error, the rest are loaded."""
        if not field.checks:
            return [None] * len(sources), list(range(len(sources))), sources
        values: list[Any] = [None] * len(sources)
        allowed: list[int] = []
        for i, source in enumerate(sources):
            try:
                for check in field.checks:
                    check.before(self.principal, source)
            except Exception as error:
                values[i] = error
                continue
            allowed.append(i)
        return values, allowed, [sources[i] for i in allowed]

    def _merge(
        self, field: FieldPlan, values: list[Any], allowed: list[int], found: list[Any]
    ) -> list[Any]:
        if len(found) != len(allowed):
            error = TypeError(
                f"The batch form of {field.parent_type.name}.{field.name} answered"
                f" {len(found)} values for {len(allowed)} parents."
            )
            found = [error] * len(allowed)
        checks = field.checks
        if not checks and len(allowed) == len(values):
            return found if isinstance(found, list) else list(found)
        for i, value in zip(allowed, found, strict=True):
            if checks and not isinstance(value, Exception):
                try:
                    for check in reversed(checks):
                        value = check.after(self.principal, value)
                except Exception as error:
                    value = error
            values[i] = value
        return values

    @staticmethod
    def _named(field: FieldPlan, args: dict[str, Any]) -> dict[str, Any]:
        names = field.python_names
        return {names[name]: value for name, value in args.items()}

    def resolve(
        self, field: FieldPlan, sources: list[Any], places: list[Pos]
    ) -> tuple[list[Any], Pending]:
        """The field's own resolver for each parent: values now, or awaitables to gather."""
        try:
            args = self.arguments(field)
        except Exception as error:
            return [error] * len(sources), []
        field_def = field.field_def
        assert field_def is not None
        resolve = field_def.resolve or default_field_resolver
        call = field.call
        values: list[Any] = [None] * len(sources)
        pending: Pending = []
        for i, source in enumerate(sources):
            try:
                if call is not None:
                    value = call(source, self.info(field, places[i]), args, self.principal)
                else:
                    value = resolve(source, self.info(field, places[i]), **args)
            except Exception as error:
                values[i] = error
                continue
            if is_awaitable(value):
                pending.append((i, value))
            else:
                values[i] = value
        return values, pending

    @staticmethod
    async def gather(values: list[Any], pending: Pending) -> list[Any]:
        if len(pending) == 1:
            index, awaitable = pending[0]
            try:
                values[index] = await awaitable
            except Exception as error:
                values[index] = error
            return values
        settled = await asyncio.gather(*(a for _, a in pending), return_exceptions=True)
        for (index, _), value in zip(pending, settled, strict=True):
            if isinstance(value, BaseException) and not isinstance(value, Exception):
                raise value
            values[index] = value
        return values

    def info(self, field: FieldPlan, parent: Pos) -> GraphQLResolveInfo[Any]:
        assert field.field_def is not None
        path = None
        for key in path_of(parent):
            path = Path(path, key, None)
        plan = self.plan
        return GraphQLResolveInfo(
            field.name,
            field.nodes,
            field.field_def.type,
            field.parent_type,
            Path(path, field.key, field.parent_type.name),
            self.schema,
            plan.fragments,
            None,
            plan.operation,
            self.variables,
            self.context,
            is_awaitable,
            None,
            self.helpers,
        )


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    """`info.async_helpers.gather`, as graphql-core's executor gives it."""
    return gather_with_cancel(*values)


def _track(tracked: set[asyncio.Future[Any]], values: Any) -> None:
    """`info.async_helpers.track`: work a resolver leaves running is still settled."""
    for value in values:
        if is_awaitable(value):
            future = asyncio.ensure_future(value)
            tracked.add(future)
            future.add_done_callback(tracked.discard)


def _read_one(read: Any, source: Any) -> Any:
    try:
        return read(source)
    except Exception as error:
        return error
