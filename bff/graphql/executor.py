"""Run a GraphQL request against the strawberry schema with cached parsing and validation.

Documents are parsed and validated once per distinct text (an LRU keyed by the document).
Each operation of a cached document is then planned once for the execution fast path
(`bff.graphql.fastpath`), or marked as one for plain graphql-core execution (introspection,
`@skip`/`@include`, anything unusual); both answer alike, and `reference=True` forces
graphql-core. Request errors (syntax, validation, unknown operation, bad variables) come back
as `RequestErrors` so the HTTP layer can give them the status the GraphQL-over-HTTP spec asks
for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from bff.graphql.fastpath import OperationPlan, execute_plan, plan_operation
from bff.limits import Shapes

MAX_TOKENS = 5000
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed, validated document, and the fast-path plan of each operation run so far
    (`None` where graphql-core runs it)."""

    document: DocumentNode
    plans: dict[str | None, OperationPlan | None] = field(default_factory=dict, compare=False)
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


class GraphQLExecutor:
    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        introspection: bool = True,
        fast: bool = True,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        self.schema = schema
        self.fast = fast
        self.max_tokens = max_tokens
        self.rules = list(specified_rules)
        if not introspection:
            self.rules.append(NoSchemaIntrospectionCustomRule)
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
        errors = validate(self.schema, document, self.rules)
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
        plan = None if reference or not self.fast else self.plan(prepared, operation_name)
        if plan is not None:
            result = await execute_plan(self.schema, plan, context, variables)
        else:
            executed = execute(
                self.schema,
                prepared.document,
                context_value=context,
                variable_values=dict(variables) if variables else None,
                operation_name=operation_name,
            )
            result = executed if isinstance(executed, ExecutionResult) else await executed
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            raise RequestErrors(list(result.errors))  # variables could not be coerced
        return result

    def plan(self, prepared: Prepared, operation_name: str | None) -> OperationPlan | None:
        """The fast-path plan of the operation, made on first use; `None`: graphql-core."""
        try:
            return prepared.plans[operation_name]
        except KeyError:
            plan = plan_operation(self.schema, prepared.document, operation_name)
            if plan is not None or operation_name is None or operation_name in prepared.names:
                prepared.plans[operation_name] = plan  # not for any name a client makes up
            return plan


def is_mutation(operation: OperationDefinitionNode) -> bool:
    return operation.operation == OperationType.MUTATION
