"""Batch forms: the one declaration of how a field that loads data is resolved.

A batch form is `fn(context, parents, args) -> list`: one value or exception per parent, in
order, from one dataloader call (a form with nothing to load may return the list directly
instead of awaiting). `args` holds the field's arguments by Python name, without the ones the
client left out. A field declares its form with `metadata=batch(fn)`; the execution fast path
calls it once for every parent of a level, and the field's own strawberry resolver calls it
for a single parent through `one`, so graphql-core and the fast path share the field's logic.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import strawberry
from strawberry.types import Info

from resolvers.context import RequestContext

Args = Mapping[str, Any]
BatchFn = Callable[[RequestContext, Sequence[Any], Args], "list[Any] | Awaitable[list[Any]]"]

BATCH = "bff.batch"


def batch(fn: BatchFn) -> dict[str, Any]:
    """The `metadata=` of a strawberry field resolved by the batch form `fn`."""
    return {BATCH: fn}


def batch_of(metadata: Mapping[str, Any]) -> BatchFn | None:
    """The batch form a field declared, if any."""
    return metadata.get(BATCH)


def one(fn: BatchFn, info: Info[RequestContext, Any], parent: Any, **args: Any) -> Any:
    """`fn` for a single parent: its value, or its exception raised (awaitable if `fn` is)."""
    given = {name: value for name, value in args.items() if value is not strawberry.UNSET}
    values = fn(info.context, (parent,), given)
    if inspect.isawaitable(values):
        return _first_awaited(values)
    return _first(values)


def _first(values: list[Any]) -> Any:
    value = values[0]
    if isinstance(value, Exception):
        raise value
    return value


async def _first_awaited(values: Awaitable[list[Any]]) -> Any:
    return _first(await values)
