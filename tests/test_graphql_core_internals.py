"""The graphql-core internals the fast path builds on, pinned by name and shape.

The fast path (bff/graphql/fastpath) reuses graphql-core's field collection, argument and
variable coercion, leaf serialization and resolve-info types instead of copying them. Those
are not all public API, so an upgrade could move them: this file fails loudly, naming what
moved, before a differential test fails obscurely. pyproject.toml bounds the version to the
minor series these checks were written against.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.executor import Executor, default_field_resolver
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Path as ResponsePath
from graphql.pyutils import gather_with_cancel, is_awaitable, is_iterable
from graphql.type.definition import GraphQLResolveInfo, GraphQLResolveInfoHelpers
from graphql.type.scalars import (
    serialize_boolean,
    serialize_float,
    serialize_id,
    serialize_int,
    serialize_string,
)

from bff.graphql import internals

ROOT = Path(__file__).resolve().parent.parent


def leading_parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    internals.LEADING_PARAMETERS,
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_functions_keep_their_leading_parameters(
    module: str, name: str, expected: tuple[str, ...]
) -> None:
    function = internals._find(module, name)
    assert tuple(leading_parameters(function)[: len(expected)]) == expected


@pytest.mark.parametrize(
    ("module", "name", "fields"),
    internals.RECORD_FIELDS,
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_records_keep_their_fields(module: str, name: str, fields: tuple[str, ...]) -> None:
    record = internals._find(module, name)
    assert tuple(record._fields[: len(fields)]) == fields


def test_the_gate_checks_what_the_fast_path_imports() -> None:
    """The gate's tables name the internals imported here, so neither can drift alone."""
    found = {name.rsplit(".", 1)[-1] for _, name, _ in internals.LEADING_PARAMETERS}
    assert {collect_fields.__name__, collect_subfields.__name__} <= found
    assert {get_argument_values.__name__, get_variable_values.__name__} <= found
    assert Executor.complete_leaf_value.__name__ in found
    records = {internals._find(m, n) for m, n, _ in internals.RECORD_FIELDS}
    assert {VariableValues, FieldDetails, FragmentDetails, GraphQLResolveInfo} <= records
    assert GraphQLResolveInfoHelpers in records


def test_helpers_are_callable() -> None:
    for helper in (
        default_field_resolver,
        gather_with_cancel,
        is_awaitable,
        is_iterable,
        serialize_boolean,
        serialize_float,
        serialize_id,
        serialize_int,
        serialize_string,
    ):
        assert callable(helper)
    assert ResponsePath(None, "a", None).as_list() == ["a"]


def test_installed_version_is_within_the_declared_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in project["dependencies"] if d.startswith("graphql-core")]
    low, high = re.fullmatch(r"graphql-core>=([\d.]+),<([\d.]+)", spec).groups()  # type: ignore[union-attr]

    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

    assert parts(low) <= parts(version("graphql-core")) < parts(high)


def test_the_gate_finds_every_internal_in_place() -> None:
    from bff.graphql import internals

    assert internals.mismatch() is None
    assert internals.ceiling_mismatch() is None


def test_moved_internals_fall_back_to_graphql_core_execute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from graphql import GraphQLField, GraphQLInt, GraphQLList, GraphQLObjectType, GraphQLSchema
    from graphql import GraphQLString as String

    from bff.graphql import ceiling, executor, internals

    item = GraphQLObjectType("Item", {"id": GraphQLField(GraphQLInt), "name": GraphQLField(String)})
    items = [{"id": i, "name": f"item {i}"} for i in range(3)]
    root = GraphQLField(GraphQLList(item), resolve=lambda *_: items)
    schema = GraphQLSchema(GraphQLObjectType("Query", {"items": root}))
    query = "{ items { id name } }"
    monkeypatch.setattr(executor, "INTERNALS_MOVED", "graphql.x.y takes other parameters")
    monkeypatch.setattr(internals, "CEILING_METHOD", ("no_such_method", ("self",)))
    assert ceiling.bounded_executor(10) is None
    with caplog.at_level("WARNING", logger="bff.graphql"):
        gate = executor.GraphQLExecutor(schema)
    assert "graphql.x.y takes other parameters" in caplog.text
    prepared = gate.prepare(query)
    result = asyncio.run(gate.execute(prepared, operation_name=None, variables=None, context={}))
    assert result.errors is None
    assert result.data == {"items": [{"id": i, "name": f"item {i}"} for i in range(3)]}
    assert gate.stats.fast == 0
    assert gate.stats.fallbacks == {"fast path disabled": 1}
