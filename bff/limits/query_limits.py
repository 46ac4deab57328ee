"""`limits`: refuse a GraphQL operation that is too deep, has too many aliases or costs too
much, before any resolver runs (so before any upstream call), and cap the size of `variables`.

The measurement (`bff.limits.analysis`) is cached per operation of a prepared document, in the
`shapes` dict the executor keeps beside its parse cache: a request for a cached document costs
one dict lookup here, plus a tuple when variables feed a `first` argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
)

from bff.config import LimitsConfig
from bff.errors import BadUserInput, QueryTooComplex, QueryTooDeep
from bff.limits.analysis import (
    COST_CACHE_SIZE,
    CycleError,
    OperationShape,
    measure,
    variable_values,
)

Shapes = dict[str | None, OperationShape]


class QueryLimits:
    def __init__(self, schema: GraphQLSchema, config: LimitsConfig) -> None:
        self.schema = schema
        self.max_depth = config.max_depth
        self.max_aliases = config.max_aliases
        self.max_cost = config.max_cost
        self.max_variables = config.max_variables

    def check_variables(self, variables: Mapping[str, Any] | None) -> None:
        """`BAD_USER_INPUT` when `variables`, as JSON, is larger than `limits.max_variables`."""
        if not variables:
            return
        try:
            size = len(orjson.dumps(variables))
        except orjson.JSONEncodeError:  # deeper than orjson writes (255 levels); JSON parsed it
            raise BadUserInput("variables are nested too deeply") from None
        if size > self.max_variables:
            raise BadUserInput(f"variables are larger than {self.max_variables} bytes")

    def check(
        self,
        shapes: Shapes,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
    ) -> int:
        """The operation's cost, or `QueryTooDeep` / `QueryTooComplex` (the first that fails).

        `document` must be validated: analysis relies on validation to exclude fragment cycles.
        """
        key = operation.name.value if operation.name is not None else None
        shape = shapes.get(key)
        if shape is None:
            shape, cost = self._measure(document, operation, variables)
            shapes[key] = shape
        elif not shape.first_variables:
            cost = shape.costs[()]
        else:
            values = variable_values(operation, dict(variables) if variables else None)
            costs_key = tuple(values.get(name) for name in shape.first_variables)
            found = shape.costs.get(costs_key)
            if found is None:
                cost = self._measure(document, operation, variables)[1]
                if len(shape.costs) >= COST_CACHE_SIZE:
                    shape.costs.clear()
                shape.costs[costs_key] = cost
            else:
                cost = found
        if shape.depth > self.max_depth:
            raise QueryTooDeep(
                f"Query depth {shape.depth} exceeds the limit of {self.max_depth}",
                depth=shape.depth,
                maxDepth=self.max_depth,
            )
        if shape.aliases > self.max_aliases:
            raise QueryTooComplex(
                f"Query has {shape.aliases} aliases; the limit is {self.max_aliases}",
                aliases=shape.aliases,
                maxAliases=self.max_aliases,
                cost=cost,
            )
        if cost > self.max_cost:
            raise QueryTooComplex(
                f"Query cost {cost} exceeds the limit of {self.max_cost}",
                cost=cost,
                maxCost=self.max_cost,
            )
        return cost

    def _measure(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
    ) -> tuple[OperationShape, int]:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        values = variable_values(operation, dict(variables) if variables else None)
        try:
            result, first_variables = measure(self.schema, fragments, operation, values)
        except (CycleError, RecursionError):
            # Validation refuses cycles and the token cap bounds nesting; if either got
            # through, refusing the query is the safe answer.
            raise QueryTooDeep("Query nests too deeply to be measured") from None
        shape = OperationShape(result.depth, result.aliases, first_variables)
        shape.costs[tuple(values.get(name) for name in first_variables)] = result.cost
        return shape, result.cost
