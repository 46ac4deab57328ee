"""`limits`: refuse a GraphQL operation that is too deep, has too many aliases or costs too
much, before any resolver runs (so before any upstream call), and cap the size of `variables`.

The measurement (`bff.limits.analysis`) is cached per operation of a prepared document, in the
`shapes` dict the executor keeps beside its parse cache: a request for a cached document costs
one dict lookup here, plus, when variables feed a multiplier (`first`, a list of keys), their
coercion and a tuple.

Those variables are coerced as execution will coerce them before the cost reads them (SPEC
section 15): an `Int` beyond 32 bits (`1e40` in JSON), a float where an `Int` goes, a list of
the wrong items is `BAD_USER_INPUT`, never a cost of 10^40 that no JSON encoder can write.
Coercion here suggests no names ("Did you mean"): the limits do not know whether
introspection is on, and execution, which does, coerces every variable again.
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
from graphql.execution.values import get_variable_values

from bff.config import LimitsConfig
from bff.errors import BadUserInput, QueryTooComplex, QueryTooDeep
from bff.limits.analysis import (
    COST_CACHE_SIZE,
    CycleError,
    Measure,
    OperationShape,
    counts,
    measure,
)

Shapes = dict[str | None, OperationShape]


class QueryLimits:
    def __init__(self, schema: GraphQLSchema, config: LimitsConfig) -> None:
        self.schema = schema
        self.max_depth = config.max_depth
        self.max_aliases = config.max_aliases
        self.max_cost = config.max_cost
        self.max_variables = config.max_variables
        self.default_list_size = config.default_list_size

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
            values = self.coerce(operation, shape.first_variables, variables)
            costs_key = tuple(values[name] for name in shape.first_variables)
            found = shape.costs.get(costs_key)
            if found is None:
                cost = self._walk(document, operation, values)[0].cost
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

    def coerce(
        self,
        operation: OperationDefinitionNode,
        names: tuple[str, ...],
        variables: Mapping[str, Any] | None,
    ) -> dict[str, int | None]:
        """The variables `names` coerced as execution will coerce them, as counts; an
        uncoercible one is `BAD_USER_INPUT`."""
        definitions = [
            d for d in operation.variable_definitions or () if d.variable.name.value in names
        ]
        coerced = get_variable_values(
            self.schema, definitions, dict(variables or {}), max_errors=1, hide_suggestions=True
        )
        if isinstance(coerced, list):
            raise BadUserInput(coerced[0].message)
        return counts(coerced.coerced, names)

    def _measure(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any] | None,
    ) -> tuple[OperationShape, int]:
        """The operation's shape and cost: one walk to find the variables the cost reads,
        and, when there are any, another with them coerced."""
        result, names = self._walk(document, operation, {})
        values: dict[str, int | None] = {}
        if names:
            values = self.coerce(operation, names, variables)
            result = self._walk(document, operation, values)[0]
        shape = OperationShape(result.depth, result.aliases, names)
        shape.costs[tuple(values[name] for name in names)] = result.cost
        return shape, result.cost

    def _walk(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        values: dict[str, int | None],
    ) -> tuple[Measure, tuple[str, ...]]:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        try:
            return measure(self.schema, fragments, operation, values, self.default_list_size)
        except (CycleError, RecursionError):
            # Validation refuses cycles and the token cap bounds nesting; if either got
            # through, refusing the query is the safe answer.
            raise QueryTooDeep("Query nests too deeply to be measured") from None
