"""Run a GraphQL request against the strawberry schema with cached parsing and validation.

Documents are parsed and validated once per distinct text (an LRU keyed by the document).
Each operation of a cached document is then planned once for the execution fast path
(`bff.graphql.fastpath`), or marked as one for plain graphql-core execution (introspection,
anything unusual, counted in `stats` by reason); both answer alike, and `reference=True`
forces graphql-core. Both stop at the response ceiling (`bff.graphql.ceiling`): a request that
hits it gets one `QUERY_TOO_COMPLEX` error. Request errors (syntax, validation, unknown
operation, bad variables) come back as `RequestErrors` so the HTTP layer can give them the
status the GraphQL-over-HTTP spec asks for.

Before validation a document is bounded (`bff.graphql.documents`, SPEC section 15): past
`max_fields` field selections (merged, fragments expanded) it is refused as
`QUERY_TOO_COMPLEX` without being validated, and validation runs on its merged copy, with the
overlap rule on a budget (`bff.graphql.validation`), driven by a walk that calls only the rules
listening to each node (`bff.graphql.walk`: graphql-core's errors, for less dispatch); with
introspection off, validation messages suggest no names. The cached document is the one
parsed: execution, costs and error locations are the client's.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    experimental_execute_incrementally,
    parse,
)
from graphql import version as graphql_version
from graphql.execution.executor import Executor

from bff.errors import QueryTooComplex
from bff.graphql import internals
from bff.graphql.ceiling import MAX_RESULT_VALUES, bounded_executor, too_large
from bff.graphql.documents import MAX_FIELDS, count_fields, merged
from bff.graphql.fallbacks import Fallback, FastPathStats
from bff.graphql.fastpath import execute_deferred_plan, execute_plan, plan_operation
from bff.graphql.incremental import Deferred, bounded_incremental_executor, execute_deferred
from bff.graphql.validation import too_complex, validation_rules
from bff.graphql.walk import validate
from bff.limits import Shapes

if TYPE_CHECKING:
    from bff.graphql.fastpath import OperationPlan

log = logging.getLogger("bff.graphql")

# graphql-core internals the fast path needs and this release lacks (`None`: none).
INTERNALS_MOVED = internals.mismatch()

Execute = Callable[..., Awaitable[ExecutionResult]]

MAX_TOKENS = 1000
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed, validated document, and the fast-path plan of each operation run so far
    (a `Fallback` where graphql-core runs it)."""

    document: DocumentNode
    plans: dict[str | None, OperationPlan | Fallback] = field(default_factory=dict, compare=False)
    # the plans that honour `@defer`, for clients that read parts
    deferring: dict[str | None, OperationPlan | Fallback] = field(
        default_factory=dict, compare=False
    )
    shapes: Shapes = field(default_factory=dict, compare=False)  # query analysis, by operation

    @property
    def names(self) -> set[str]:
        """The names of the document's operations."""
        return {
            d.name.value
            for d in self.document.definitions
            if isinstance(d, OperationDefinitionNode) and d.name is not None
        }


class RequestErrors(Exception):
    """The request cannot be executed at all (GraphQL `request error`)."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(errors[0].message if errors else "request error")
        self.errors = errors


DISABLED = Fallback("fast path disabled")


class GraphQLExecutor:
    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        introspection: bool = True,
        fast: bool = True,
        observe: Callable[[Execute], Execute] | None = None,
        max_result_values: int = MAX_RESULT_VALUES,
        max_tokens: int = MAX_TOKENS,
        max_fields: int = MAX_FIELDS,
    ) -> None:
        self.schema = schema
        if observe is not None:  # telemetry's operation span around every execution
            self.execute = observe(self.execute)  # type: ignore[method-assign,assignment]
            self.execute_deferred = observe(self.execute_deferred)  # type: ignore[method-assign,assignment,arg-type]
        if fast and INTERNALS_MOVED is not None:
            log.warning(
                "graphql-core %s moved internals the fast path uses (%s): every operation"
                " runs on graphql-core's execute instead (slower, same answers)",
                graphql_version,
                INTERNALS_MOVED,
            )
            fast = False
        self.fast = fast
        self.limit = max_result_values
        self.stats = FastPathStats()
        self._bounded = bounded_executor(max_result_values)
        self._incremental = bounded_incremental_executor(max_result_values)
        self.max_tokens = max_tokens
        self.max_fields = max_fields
        self.rules = validation_rules(introspection=introspection)
        self.hide_suggestions = not introspection  # "Did you mean ...?" would reveal names
        self._cache: OrderedDict[str, Prepared | RequestErrors] = OrderedDict()

    def prepare(self, query: str) -> Prepared:
        """Parse and validate `query`, or raise `RequestErrors`; both outcomes are cached."""
        cached = self._cache.get(query)
        if cached is None:
            cached = self._prepare(query)
            self._cache[query] = cached
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(query)
        if isinstance(cached, RequestErrors):
            raise cached
        return cached

    def _prepare(self, query: str) -> Prepared | RequestErrors:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            return RequestErrors([error])
        bounded = merged(document)
        fields = count_fields(bounded, self.max_fields)
        if fields > self.max_fields:
            return too_many_fields(fields, self.max_fields)
        errors = validate(self.schema, bounded, self.rules, hide_suggestions=self.hide_suggestions)
        if too_complex(errors):
            return RequestErrors([e for e in errors if too_complex([e])])
        if errors:
            return RequestErrors(errors)
        return Prepared(document)

    @staticmethod
    def operation(prepared: Prepared, operation_name: str | None) -> OperationDefinitionNode:
        """The operation to run, or `RequestErrors` when it is ambiguous or unknown."""
        operations = [
            d for d in prepared.document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        if operation_name is None:
            if len(operations) == 1:
                return operations[0]
            raise RequestErrors(
                [GraphQLError("Must provide operation name if query contains multiple operations.")]
            )
        for op in operations:
            if op.name is not None and op.name.value == operation_name:
                return op
        raise RequestErrors([GraphQLError(f"Unknown operation named '{operation_name}'.")])

    async def execute(
        self,
        prepared: Prepared,
        *,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        context: Any,
        reference: bool = False,
    ) -> ExecutionResult:
        result = None
        if not reference:
            plan = self.plan(prepared, operation_name) if self.fast else DISABLED
            if not isinstance(plan, Fallback):
                result = await execute_plan(
                    self.schema, plan, context, variables, self.limit, self.hide_suggestions
                )
                if result is None:
                    self.stats.fell_back("null @skip/@include variable")
                else:
                    self.stats.fast += 1
            else:
                self.stats.fell_back(plan.reason)
        if result is None:
            result = await self.reference(prepared, operation_name, variables, context)
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            raise RequestErrors(list(result.errors))  # variables could not be coerced
        return result

    async def reference(
        self,
        prepared: Prepared,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        context: Any,
    ) -> ExecutionResult:
        """Plain graphql-core execution, bounded by the same response ceiling, in one piece.

        graphql-core's `execute` refuses a schema that declares `@defer`; its incremental
        entry point with the plain `Executor` (which completes deferred fragments in place)
        is what it runs underneath, and answers every other operation alike."""
        executed = experimental_execute_incrementally(
            self.schema,
            prepared.document,
            context_value=context,
            variable_values=dict(variables) if variables else None,
            operation_name=operation_name,
            executor_class=self._bounded or Executor,
            hide_suggestions=self.hide_suggestions,
        )
        result = await executed if isawaitable(executed) else executed
        assert isinstance(result, ExecutionResult)  # the plain `Executor` never defers
        hit = too_large(result.errors)
        if hit is not None:  # whatever was built is dropped: one error, no data
            return ExecutionResult(None, [GraphQLError(hit.message, original_error=hit)])
        return result

    async def execute_deferred(
        self,
        prepared: Prepared,
        *,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        context: Any,
    ) -> Deferred:
        """The operation with its `@defer`s honoured: the first part, and the later ones.

        The fast path runs it where it plans it (`deferring`), graphql-core's incremental
        execution otherwise; request errors are raised as `execute` raises them, a hit
        ceiling answers one error."""
        deferred = None
        plan = self.plan(prepared, operation_name, deferring=True) if self.fast else DISABLED
        if not isinstance(plan, Fallback):
            deferred = await execute_deferred_plan(
                self.schema, plan, context, variables, self.limit
            )
            if deferred is None:
                self.stats.fell_back("null @skip/@include variable")
            else:
                self.stats.fast += 1
        else:
            self.stats.fell_back(plan.reason)
        if deferred is None:
            deferred = await execute_deferred(
                self.schema,
                prepared.document,
                operation_name=operation_name,
                variables=variables,
                context=context,
                executor_class=self._incremental,
            )
        errors = deferred.errors
        if deferred.data is None and errors and all(e.path is None for e in errors):
            await deferred.close()
            raise RequestErrors(list(errors))  # variables could not be coerced
        hit = too_large(errors)
        if hit is not None:
            await deferred.close()
            return Deferred(None, [GraphQLError(hit.message, original_error=hit)])
        return deferred

    def plan(
        self, prepared: Prepared, operation_name: str | None, *, deferring: bool = False
    ) -> OperationPlan | Fallback:
        """The fast-path plan of the operation, made on first use, or why graphql-core runs
        it; `deferring`: the plan that answers in parts."""
        plans = prepared.deferring if deferring else prepared.plans
        try:
            return plans[operation_name]
        except KeyError:
            plan = plan_operation(
                self.schema, prepared.document, operation_name, deferring=deferring
            )
            known = operation_name is None or operation_name in prepared.names
            if isinstance(plan, Fallback) and known:
                names = prepared.names
                name = operation_name or (min(names) if len(names) == 1 else None)
                self.stats.first_fallback(name, plan.reason)
            if not isinstance(plan, Fallback) or known:
                plans[operation_name] = plan  # not for any name a client makes up
            return plan


def too_many_fields(fields: int, limit: int) -> RequestErrors:
    """The refusal of a document past `limits.max_fields`; counting stops one past it, so
    `fields` says "at least"."""
    message = f"The query selects more than {limit} fields (merged, fragments expanded)"
    error = QueryTooComplex(message, fields=fields, maxFields=limit)
    return RequestErrors([GraphQLError(message, original_error=error)])


def is_mutation(operation: OperationDefinitionNode) -> bool:
    return operation.operation == OperationType.MUTATION
