"""The execution fast path: compiled plans run level by level, with graphql-core's results.

graphql-core resolves a query field by field and item by item, a coroutine each; on a list of
a few hundred objects that bookkeeping, not I/O, is the cost. The fast path compiles each
cached document's operation once (`plan`), then resolves every field once for all parents of
a level (`engine`): attributes are read in a loop, fields that load data call their batch form
once (one dataloader call per level), and results are built directly as the dicts of the
response. What it answers (data, errors with their paths, locations and original errors,
nulls propagated) is what graphql-core answers; an operation it does not handle (`support`)
is left to graphql-core, which is decided once per document.

    plan = plan_operation(schema, document, operation_name)  # None: use graphql-core
    result = await execute_plan(schema, plan, context, variables)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import ExecutionResult, GraphQLSchema
from graphql.execution.values import get_variable_values

from bff.graphql.fastpath.engine import Engine
from bff.graphql.fastpath.plan import OperationPlan, plan_operation

MAX_COERCION_ERRORS = 50  # graphql-core's default


async def execute_plan(
    schema: GraphQLSchema,
    plan: OperationPlan,
    context: Any,
    variables: Mapping[str, Any] | None,
) -> ExecutionResult:
    """Run `plan` as graphql-core's `execute` would run its operation."""
    coerced = get_variable_values(
        schema,
        plan.operation.variable_definitions or (),
        dict(variables) if variables else {},
        max_errors=MAX_COERCION_ERRORS,
    )
    if isinstance(coerced, list):
        return ExecutionResult(None, coerced)
    data, errors = await Engine(schema, plan, context, coerced).run(plan)
    return ExecutionResult(data, errors or None)


__all__ = ["OperationPlan", "execute_plan", "plan_operation"]
