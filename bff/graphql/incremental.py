"""`@defer`: an operation answered in parts, in the format Apollo Client reads (deferSpec=20220824).

`Deferred` is what both executions answer: the fast path's (`fastpath.deferral`) and, for
what the fast path leaves to it (`if:` from a variable, mutations), graphql-core's
incremental execution here (`IncrementalExecutor` with early execution: a deferred
fragment's upstream calls start with the others, so fragments that resolve together share
their dataloader batches), bounded by the same response ceiling. The first part holds the
data that is not deferred and is ready without waiting for any deferred field; each deferred
fragment follows as soon as it is complete.

graphql-core speaks the newer format (`pending` ids, `completed`, `subPath`); `_parts`
translates it into the 2022-08-24 one: every part of a fragment names its own `path` and
`label`, and a fragment that failed as a whole (a non-null field nulled it) arrives as
`{"data": null, "path": ..., "errors": [...]}`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    experimental_execute_incrementally,
)
from graphql.execution import (
    ExperimentalIncrementalExecutionResults,
    IncrementalDeferResult,
    PendingResult,
    SubsequentIncrementalExecutionResult,
)
from graphql.execution.incremental.incremental_executor import IncrementalExecutor

from bff.graphql.ceiling import bounded
from bff.graphql.internals import ceiling_mismatch


@dataclass(frozen=True, slots=True)
class Increment:
    """One deferred fragment's data at `path` (`None` when the fragment failed as a whole)."""

    path: list[str | int]
    data: dict[str, Any] | None
    errors: list[GraphQLError]
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Later:
    """One part after the first: the fragments completed meanwhile, and whether more come."""

    increments: list[Increment]
    has_next: bool


@dataclass(slots=True)
class Deferred:
    """A deferred operation's answer: the first part now, the rest as `parts` yields them."""

    data: dict[str, Any] | None
    errors: list[GraphQLError] | None
    parts: AsyncIterator[Later] | None = None  # None: nothing was deferred

    async def close(self) -> None:
        """Stop the deferred work (the client left, or the response was dropped)."""
        parts = self.parts
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()


def bounded_incremental_executor(limit: int) -> type[IncrementalExecutor]:
    """graphql-core's incremental executor, stopping past `limit` completed values (the
    response ceiling, counted over all parts) where this graphql-core lets it be bounded."""
    if ceiling_mismatch() is not None:
        return IncrementalExecutor

    return bounded(IncrementalExecutor, limit)


async def execute_deferred(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    context: Any,
    executor_class: type[IncrementalExecutor],
) -> Deferred:
    """Run the operation incrementally: its first part, and the later ones to iterate."""
    executed = experimental_execute_incrementally(
        schema,
        document,
        context_value=context,
        variable_values=dict(variables) if variables else None,
        operation_name=operation_name,
        enable_early_execution=True,
        executor_class=executor_class,
    )
    result = await executed if isawaitable(executed) else executed
    if isinstance(result, ExecutionResult):
        return Deferred(result.data, result.errors)
    assert isinstance(result, ExperimentalIncrementalExecutionResults)
    initial = result.initial_result
    deferred = Deferred(initial.data, initial.errors)
    if initial.has_next:
        deferred.parts = _parts(initial.pending, result.subsequent_results)
    else:
        await result.subsequent_results.aclose()
    return deferred


async def _parts(
    pending: list[PendingResult],
    subsequent: AsyncIterator[SubsequentIncrementalExecutionResult],
) -> AsyncIterator[Later]:
    """The later parts in the 2022-08-24 format (empty ones dropped, but for the last)."""
    known = {p.id: p for p in pending}
    try:
        async for result in subsequent:
            for p in result.pending or ():
                known[p.id] = p
            increments = [_increment(known, item) for item in result.incremental or ()]
            for completed in result.completed or ():
                origin = known.pop(completed.id, None)
                if completed.errors and origin is not None:  # the fragment failed as a whole
                    increments.append(
                        Increment(origin.path, None, list(completed.errors), origin.label)
                    )
            if increments or not result.has_next:
                yield Later(increments, result.has_next)
            if not result.has_next:
                return
    finally:
        aclose = getattr(subsequent, "aclose", None)
        if aclose is not None:
            await aclose()


def _increment(known: dict[str, PendingResult], item: Any) -> Increment:
    origin = known[item.id]
    path = [*origin.path, *(item.sub_path or ())]
    if isinstance(item, IncrementalDeferResult):
        data = item.data
    else:  # `@stream` is not declared, so graphql-core never sends items
        raise TypeError(f"unexpected incremental result {type(item).__name__}")
    return Increment(path, data, list(item.errors or ()), origin.label)
