"""Run a GraphQL request against the strawberry schema with cached parsing and validation.

Documents are parsed and validated once per distinct text (an LRU keyed by the document),
which is most of the per-request CPU a repeated query costs. Request errors (syntax,
validation, unknown operation, bad variables) come back as `RequestErrors` so the HTTP
layer can give them the status the GraphQL-over-HTTP spec asks for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
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

MAX_TOKENS = 5000
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Prepared:
    """A parsed, validated document."""

    document: DocumentNode


class RequestErrors(Exception):
    """The request cannot be executed at all (GraphQL `request error`)."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(errors[0].message if errors else "request error")
        self.errors = errors


class GraphQLExecutor:
    def __init__(self, schema: GraphQLSchema, *, introspection: bool = True) -> None:
        self.schema = schema
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
            document = parse(query, max_tokens=MAX_TOKENS)
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
    ) -> ExecutionResult:
        result = execute(
            self.schema,
            prepared.document,
            context_value=context,
            variable_values=dict(variables) if variables else None,
            operation_name=operation_name,
        )
        if not isinstance(result, ExecutionResult):
            result = await result
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            raise RequestErrors(list(result.errors))  # variables could not be coerced
        return result


def is_mutation(operation: OperationDefinitionNode) -> bool:
    return operation.operation == OperationType.MUTATION
