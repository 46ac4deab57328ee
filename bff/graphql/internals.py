"""The graphql-core internals the fast path and the response ceiling build on, checked once.

The fast path (`bff.graphql.fastpath`) reuses graphql-core's field collection, argument and
variable coercion, leaf serialization and resolve-info types, and the ceiling subclasses its
`Executor`; not all of that is public API. pyproject.toml bounds graphql-core to the minor
series these checks were written against, but a user may still install another release:
then `mismatch()` names what moved, the gateway logs it once and runs every operation on
graphql-core's public `execute` (slower, never wrong), and the ceiling counts on its own
executor only when the method it overrides is still there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

LEADING_PARAMETERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "graphql.execution.collect_fields",
        "collect_fields",
        ("schema", "fragments", "variable_values", "runtime_type", "operation"),
    ),
    (
        "graphql.execution.collect_fields",
        "collect_subfields",
        (
            "schema",
            "fragments",
            "variable_values",
            "operation",
            "return_type",
            "field_details_list",
        ),
    ),
    ("graphql.execution.values", "get_argument_values", ("type_def", "node", "variable_values")),
    ("graphql.execution.values", "get_variable_values", ("schema", "var_def_nodes", "inputs")),
    ("graphql.execution.executor", "Executor.complete_leaf_value", ("return_type", "result")),
)

RECORD_FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("graphql.execution.values", "VariableValues", ("sources", "coerced")),
    ("graphql.execution.collect_fields", "FieldDetails", ("node",)),
    ("graphql.execution.collect_fields", "FragmentDetails", ("definition",)),
    ("graphql.type.definition", "GraphQLResolveInfoHelpers", ("gather", "track")),
    (
        "graphql.type.definition",
        "GraphQLResolveInfo",
        (
            "field_name",
            "field_nodes",
            "return_type",
            "parent_type",
            "path",
            "schema",
            "fragments",
            "root_value",
            "operation",
            "variable_values",
            "context",
            "is_awaitable",
        ),
    ),
)

HELPERS: tuple[tuple[str, str], ...] = (
    ("graphql.execution.executor", "default_field_resolver"),
    ("graphql.pyutils", "gather_with_cancel"),
    ("graphql.pyutils", "is_awaitable"),
    ("graphql.pyutils", "is_iterable"),
    ("graphql.type.scalars", "serialize_boolean"),
    ("graphql.type.scalars", "serialize_float"),
    ("graphql.type.scalars", "serialize_id"),
    ("graphql.type.scalars", "serialize_int"),
    ("graphql.type.scalars", "serialize_string"),
)

CEILING_METHOD = ("complete_value", ("self", "return_type", "field_details_list", "info", "path"))


def _find(module: str, dotted: str) -> Any:
    value: Any = __import__(module, fromlist=["_"])
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _leading(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def mismatch() -> str | None:
    """What of the fast path's graphql-core internals moved in the installed release, or
    `None` when everything is where the fast path expects it."""
    try:
        for module, name, expected in LEADING_PARAMETERS:
            if tuple(_leading(_find(module, name))[: len(expected)]) != expected:
                return f"{module}.{name} takes other parameters"
        for module, name, fields in RECORD_FIELDS:
            if tuple(getattr(_find(module, name), "_fields", ())[: len(fields)]) != fields:
                return f"{module}.{name} has other fields"
        for module, name in HELPERS:
            if not callable(_find(module, name)):
                return f"{module}.{name} is not callable"
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return ceiling_mismatch()


def ceiling_mismatch() -> str | None:
    """Why the response ceiling cannot subclass graphql-core's `Executor`, or `None`."""
    try:
        executor = _find("graphql.execution.executor", "Executor")
        name, expected = CEILING_METHOD
        if tuple(_leading(getattr(executor, name))[: len(expected)]) != expected:
            return f"graphql.execution.executor.Executor.{name} takes other parameters"
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None
