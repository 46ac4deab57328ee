"""The validation walk (`bff.graphql.walk`) against graphql-core's own `validate`: the same
errors, messages, locations and order, with the gateway's rules and with graphql-core's, on the
documents as sent and merged, suggestions on and off, over generated documents valid and not,
and on documents that hit each way validation stops early."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import graphql
import pytest
from graphql import GraphQLError, GraphQLSchema, TypeInfo, parse, specified_rules
from graphql.pyutils import RefMap
from graphql.validation import ASTValidationRule, ValidationContext, ValidationRule
from hypothesis import HealthCheck, given, settings

from bff.graphql import walk
from bff.graphql.documents import merged
from bff.graphql.validation import validation_rules
from tests.test_documents_properties import SCHEMA, attacks, documents

RULE_SETS: list[list[type[ASTValidationRule]]] = [
    validation_rules(introspection=True),
    validation_rules(introspection=False),
    list(specified_rules),
]


def seen(errors: list[GraphQLError]) -> list[tuple[Any, ...]]:
    return [(type(e).__name__, e.message, e.locations, e.path) for e in errors]


def same_errors(schema: GraphQLSchema, query: str) -> None:
    try:
        sent = parse(query, max_tokens=1000)
    except GraphQLError:
        return
    for document in (sent, merged(sent)):
        for rules in RULE_SETS:
            for hide in (False, True):
                plain = graphql.validate(schema, document, rules, hide_suggestions=hide)
                walked = walk.validate(schema, document, rules, hide_suggestions=hide)
                assert seen(walked) == seen(plain)


def test_the_walk_is_in_use() -> None:
    assert walk.WALKABLE
    assert walk.PRUNE_DIRECTIVES_RULE


def test_the_contexts_node_caches_are_keyed_by_identity() -> None:
    document = parse("{ __typename }")
    context = ValidationContext(SCHEMA, document, TypeInfo(SCHEMA), lambda _error: None)
    walk.by_identity(context)
    for name in walk.CONTEXT_CACHES:
        assert isinstance(getattr(context, name), RefMap), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_documents_get_graphql_cores_errors(query: str) -> None:
    same_errors(SCHEMA, query)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attacks())
def test_repeated_documents_get_graphql_cores_errors(query: str) -> None:
    same_errors(SCHEMA, query)


@pytest.mark.parametrize(
    "query",
    [
        "{ a: __typename a: __schema { queryType { name } } }",  # a conflict
        "{ " + "x " * 150 + "}",  # past 100 errors: aborted
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",  # a cycle
        "type T { a: Int } query @skip(if: true) @skip(if: true) { __typename }",
        "query($v: Int) { __typename @include(if: $v) } { __typename }",
        "{ __typename ...A } fragment A on Query { __typename } fragment U on Query { x }",
        # repeated directives on a field, a spread, an inline fragment and a fragment
        "{ a @skip(if: false) @skip(if: true) b: a ...A @include(if: true) @include(if: true)"
        " ... @skip(if: false) @skip(if: false) { a } } fragment A on Query @x @x { a }",
    ],
)
def test_documents_that_stop_or_fail_validation_get_graphql_cores_errors(query: str) -> None:
    same_errors(SCHEMA, query)


def test_fragments_nested_past_the_interpreters_depth_are_aborted_alike() -> None:
    query = (
        "{ ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(1500))
        + " fragment F1500 on Query { __typename }"
    )
    document = parse(query)
    rules = validation_rules(introspection=True)
    walked = walk.validate(SCHEMA, document, rules)
    assert seen(walked) == seen(graphql.validate(SCHEMA, document, rules))
    assert walked[-1].message == "Validation aborted."


class Editing(ValidationRule):
    """A rule that returns an edit, as no rule of graphql-core does."""

    def enter_field(self, *_args: Any) -> Any:
        return graphql.REMOVE


def test_a_rule_returning_an_edit_gets_graphql_cores_validate() -> None:
    document = parse("{ __typename x }")
    rules = [Editing, *specified_rules]
    walked = walk.validate(SCHEMA, document, rules)
    assert seen(walked) == seen(graphql.validate(SCHEMA, document, rules))
    assert walked == []  # graphql-core's visit drops an edited field: no rule after it sees `x`


class Skipping(ValidationRule):
    """Skips every field's subtree, breaks at the first fragment: both per rule."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.names: list[str] = []

    def enter_field(self, node: Any, *_args: Any) -> Any:
        self.names.append(node.name.value)
        return self.SKIP

    def enter_inline_fragment(self, *_args: Any) -> Any:
        self.report_error(GraphQLError("entered " + " ".join(self.names)))
        return self.BREAK

    def leave_field(self, node: Any, *_args: Any) -> None:  # never: each field is skipped
        self.report_error(GraphQLError(f"left {node.name.value}", node))

    def leave_document(self, *_args: Any) -> None:  # never: the rule broke off
        self.report_error(GraphQLError("left the document"))


def test_skip_and_break_are_per_rule_as_in_graphql_core() -> None:
    document = parse("{ __schema { types { name } } __typename ... on Query { __typename } }")
    rules = [Skipping, *specified_rules]
    walked = walk.validate(SCHEMA, document, rules)
    assert seen(walked) == seen(graphql.validate(SCHEMA, document, rules))
    assert [e.message for e in walked] == ["entered __schema __typename"]


class SkippingSets(ValidationRule):
    """Skips every second selection set it meets, and reports each one it leaves."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.seen = 0

    def enter_selection_set(self, *_args: Any) -> Any:
        self.seen += 1
        return self.SKIP if self.seen % 2 == 0 else None

    def leave_selection_set(self, node: Any, *_args: Any) -> None:
        self.report_error(GraphQLError("left a selection set", node))


def test_skips_nested_in_skips_end_where_their_nodes_are_left() -> None:
    document = parse(
        "{ __schema { types { fields { name } name } } a: __typename"
        " ... on Query { __type(name: 1) { name fields { name } } } }"
    )
    rules = [SkippingSets, Skipping, SkippingSets, *specified_rules]
    walked = walk.validate(SCHEMA, document, rules)
    assert seen(walked) == seen(graphql.validate(SCHEMA, document, rules))
    assert sum(e.message == "left a selection set" for e in walked) >= 2


class Recorded(ValidationRule):
    """Keeps a weak reference to each of its instances."""

    instances: list[weakref.ref[Any]] = []

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.instances.append(weakref.ref(self))

    def enter_field(self, *_args: Any) -> None:
        pass


def test_the_rules_go_when_validation_returns_without_the_garbage_collector() -> None:
    document = parse("{ __typename ...A } fragment A on Query { __typename }")
    gc.collect()
    gc.disable()
    try:
        walk.validate(SCHEMA, document, [Recorded, *validation_rules(introspection=True)])
        assert Recorded.instances
        assert all(ref() is None for ref in Recorded.instances)
    finally:
        gc.enable()
