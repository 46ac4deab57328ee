"""The execution fast path: compiled plans run level by level, with graphql-core's results.

graphql-core resolves a query field by field and item by item, a coroutine each; on a list of
a few hundred objects that bookkeeping, not I/O, is the cost. The fast path compiles each
cached document's operation once (`plan`), then resolves every field once for all parents of
a level (`engine`): attributes are read in a loop, fields that load data call their batch form
once (one dataloader call per level), and results are built directly as the dicts of the
response. What it answers (data, errors with their paths, locations and original errors,
nulls propagated) is what graphql-core answers; an operation it does not handle (`support`)
is left to graphql-core, which is decided once per document (`Fallback` says why).

    plan = plan_operation(schema, document, operation_name)  # a Fallback: use graphql-core
    result = await execute_plan(schema, plan, context, variables)  # None: use graphql-core

A plan made `deferring` answers in parts (`execute_deferred_plan`, `deferral`).

An execution builds at most `limit` values (`bff.graphql.ceiling`): past that it stops and
answers one `QUERY_TOO_COMPLEX` error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema
from graphql.execution.values import get_variable_values

from bff.graphql.ceiling import MAX_RESULT_VALUES, ResponseTooLarge
from bff.graphql.fallbacks import Fallback
from bff.graphql.fastpath.engine import Engine
from bff.graphql.fastpath.plan import OperationPlan, plan_operation
from bff.graphql.incremental import Deferred

MAX_COERCION_ERRORS = 50  # graphql-core's default


async def execute_plan(
    schema: GraphQLSchema,
    plan: OperationPlan,
    context: Any,
    variables: Mapping[str, Any] | None,
    limit: int = MAX_RESULT_VALUES,
    hide_suggestions: bool = False,
) -> ExecutionResult | None:
    """Run `plan` as graphql-core's `execute` would run its operation; `None` when these
    variables are for graphql-core to judge (a `@skip`/`@include` switch that is null)."""
    coerced = get_variable_values(
        schema,
        plan.operation.variable_definitions or (),
        dict(variables) if variables else {},
        max_errors=MAX_COERCION_ERRORS,
        hide_suggestions=hide_suggestions,  # with introspection off, no names are suggested
    )
    if isinstance(coerced, list):
        return ExecutionResult(None, coerced)
    root = plan.root_for(coerced.coerced)
    if root is None:
        return None
    engine = Engine(schema, plan, context, coerced)
    engine.limit = limit
    try:
        data, errors = await engine.run(root)
    except ResponseTooLarge as error:
        return ExecutionResult(None, [GraphQLError(error.message, original_error=error)])
    return ExecutionResult(data, errors or None)


async def execute_deferred_plan(
    schema: GraphQLSchema,
    plan: OperationPlan,
    context: Any,
    variables: Mapping[str, Any] | None,
    limit: int = MAX_RESULT_VALUES,
) -> Deferred | None:
    """Run a `deferring` plan: its first part, and the later ones to iterate; `None` as
    for `execute_plan`."""
    coerced = get_variable_values(
        schema,
        plan.operation.variable_definitions or (),
        dict(variables) if variables else {},
        max_errors=MAX_COERCION_ERRORS,
    )
    if isinstance(coerced, list):
        return Deferred(None, coerced)
    root = plan.root_for(coerced.coerced)
    if root is None:
        return None
    engine = Engine(schema, plan, context, coerced)
    engine.limit = limit
    try:
        data, errors = await engine.run(root)
    except ResponseTooLarge as error:
        parts = engine.parts
        if parts is not None:
            for group in parts.groups:
                if group.task is not None:
                    group.task.cancel()
        return Deferred(None, [GraphQLError(error.message, original_error=error)])
    parts = engine.parts  # None: the document defers nothing after all
    later = parts.later() if parts is not None and parts.groups else None
    return Deferred(data, errors or None, later)


__all__ = ["Fallback", "OperationPlan", "execute_deferred_plan", "execute_plan", "plan_operation"]
