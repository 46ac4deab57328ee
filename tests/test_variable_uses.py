"""`VariableUsesRule` gives graphql-core's variable-use verdicts and messages from one pass."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, build_schema, parse, validate
from graphql.validation import (
    NoUndefinedVariablesRule,
    NoUnusedVariablesRule,
    ValidationContext,
    VariablesInAllowedPositionRule,
)

from bff.graphql.validation import validation_rules
from bff.graphql.variable_uses import VariableUsesRule, type_info_kept

SCHEMA = build_schema("""
    directive @oneOf on INPUT_OBJECT
    input Pick @oneOf { id: ID name: String }
    input Where { id: ID! limit: Int = 10 }
    type Item { id: ID! named(prefix: String!, upper: Boolean = false): String }
    type Query {
      item(id: ID!): Item
      items(where: Where, ids: [ID!]): [Item!]!
      pick(by: Pick): Item
    }
""")
CORE = [NoUndefinedVariablesRule, NoUnusedVariablesRule, VariablesInAllowedPositionRule]


def messages(errors: list[GraphQLError]) -> list[tuple[str, list[tuple[int, int]]]]:
    located = [(e.message, [(loc.line, loc.column) for loc in e.locations or ()]) for e in errors]
    return sorted(located)


@pytest.mark.parametrize(
    "query",
    [
        "query($id: ID!) { item(id: $id) { id } }",
        "query { item(id: $id) { id } }",
        "query Named($unused: Int) { item(id: 1) { id } }",
        "query($id: String) { item(id: $id) { id } }",
        "query($id: ID) { item(id: $id) { id } }",
        "query($p: String) { item(id: 1) { named(prefix: $p) } }",
        'query($u: Boolean) { item(id: 1) { named(prefix: "a", upper: $u) } }',
        "query($l: Int) { items(where: {id: 1, limit: $l}) { id } }",
        "query($i: ID) { items(ids: [$i]) { id } }",
        "query($n: String) { pick(by: {name: $n}) { id } }",
        "query($n: String!) { pick(by: {name: $n}) { id } }",
        # through fragments, nested, spread twice, in a cycle, unknown, in two operations
        "query A($id: ID!) { ...F } query B { ...F ...G } "
        "fragment F on Query { item(id: $id) { ...H } } fragment G on Query { ...Nope } "
        "fragment H on Item { named(prefix: $p) ...H }",
        "query($x: Int, $x: Int) { item(id: $x) { id } }",
        "query($d: Boolean = true) { item(id: 1) @include(if: $d) { id } }",
        "{ ...F } fragment F on Query { item(id: $id) { id } }",
    ],
)
def test_the_verdicts_and_messages_are_graphql_cores(query: str) -> None:
    document = parse(query)
    assert messages(validate(SCHEMA, document, [VariableUsesRule])) == messages(
        validate(SCHEMA, document, CORE)
    )


def test_the_gateway_runs_it_instead_of_graphql_cores_three_rules() -> None:
    rules = validation_rules(introspection=True)
    assert VariableUsesRule in rules
    assert not set(CORE) & set(rules)


def test_a_graphql_core_without_the_type_info_it_reads_gets_its_own_three_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_type_info` is graphql-core's private attribute: a release that moved it must not make
    validation fail, only slower."""
    assert type_info_kept()
    original = ValidationContext.__init__

    def renamed(self: ValidationContext, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._renamed_type_info = self.__dict__.pop("_type_info")  # type: ignore[attr-defined]

    monkeypatch.setattr(ValidationContext, "__init__", renamed)
    assert not type_info_kept()
    rules = validation_rules(introspection=True)
    assert VariableUsesRule not in rules
    assert set(CORE) <= set(rules)
