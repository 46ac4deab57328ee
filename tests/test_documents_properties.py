"""Properties of document preparation over generated documents (SPEC section 15): whatever a
client sends under the token cap is accepted or refused with a code, the verdict is plain
graphql-core's on the document as sent, and the merged document that validation sees answers
exactly what the sent one answers.

The documents are drawn over a small schema with an interface, arguments, lists and
self-nesting, from few names on purpose, so that repeated fields, colliding aliases, differing
arguments and directives, inline fragments, named fragments spread again (and sometimes
unknown, cyclic or on the wrong type) and unused variables all come up often; some documents
are valid, many are not. A second strategy repeats a selection many times over, up to the
token cap, as an attacker would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    specified_rules,
    validate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bff.graphql.documents import merged
from bff.graphql.executor import MAX_TOKENS, GraphQLExecutor, RequestErrors
from bff.graphql.validation import FiniteFloatsRule

SCHEMA = build_schema("""
    interface Thing { id: ID! }
    type Node implements Thing {
      id: ID!
      n(times: Int = 1): Int
      name(upper: Boolean): String
      child(x: Int): Node
      kids(first: Int = 2): [Node!]!
    }
    type Other implements Thing { id: ID! size: Float }
    type Query {
      a: Int
      node(x: Int): Node
      thing(id: ID!): Thing
      list(first: Int = 2, ids: [ID!]): [Node!]!
    }
""")

FIELDS = {
    "Query": ["a", "node", "thing", "list"],
    "Node": ["id", "n", "name", "child", "kids"],
    "Other": ["id", "size"],
    "Thing": ["id"],
}
RETURNS = {
    ("Query", "node"): "Node",
    ("Query", "thing"): "Thing",
    ("Query", "list"): "Node",
    ("Node", "child"): "Node",
    ("Node", "kids"): "Node",
}
ARGUMENTS = {
    "node": ["x"],
    "child": ["x"],
    "n": ["times"],
    "name": ["upper"],
    "kids": ["first"],
    "list": ["first", "ids"],
    "thing": ["id"],
}
VALUES = {
    "x": ["1", "2", "$v"],
    "times": ["1", "3", "$v"],
    "upper": ["true", "false", "$flag"],
    "first": ["1", "2", "$v"],
    "ids": ['["1", "2"]', '["3"]', "[]"],
    "id": ['"1"', '"o2"'],
}
VARIABLES = {"v": "Int = 2", "flag": "Boolean = true"}
CONDITIONS = ["Node", "Other", "Thing", None, "Query"]
POSSIBLE = {  # type conditions that may apply where each type is expected
    "Query": [None, "Query"],
    "Node": [None, "Node", "Thing"],
    "Thing": [None, "Thing", "Node", "Other", "Node", "Other"],
    "Other": [None, "Other", "Thing"],
}
MISTAKES = ("name", "conflict", "type", "fragment", "leaf", "variable")


def node(key: int) -> dict[str, Any]:
    """Node `key`, its fields as graphql-core's default resolver reads them."""
    return {
        "__typename": "Node",
        "id": str(key),
        "n": lambda _info, times=1: key * times,
        "name": lambda _info, upper=None: f"node{key}".upper() if upper else f"node{key}",
        "child": lambda _info, x=None: node(key * 2 + (x or 0)) if key < 50 else None,
        "kids": lambda _info, first=2: [node(key + i + 1) for i in range(min(first, 3))],
    }


def thing(_info: Any, id: str) -> dict[str, Any]:
    if id.startswith("o"):
        return {"__typename": "Other", "id": id, "size": 1.5}
    return node(int(id))


ROOT = {
    "a": 7,
    "node": lambda _info, x=None: node(x or 1),
    "thing": thing,
    "list": lambda _info, first=2, ids=None: [node(int(i)) for i in ids or range(1, first + 1)],
}


@dataclass
class Drawn:
    """What a document uses, to declare it (its variables, its fragments)."""

    kind: str | None  # the one kind of mistake this document makes (`None`: it is valid)
    variables: set[str] = field(default_factory=set)
    fragments: dict[str, str] = field(default_factory=dict)

    def mistake(self, draw: st.DrawFn, kind: str) -> bool:
        """Whether to make a mistake of `kind` here: one draw in five (conflicts: one in
        two), if it is this document's kind."""
        odds = 1 if kind == "conflict" else 4
        return self.kind == kind and draw(st.integers(0, odds)) == 0


@st.composite
def selection_sets(
    draw: st.DrawFn,
    parent: str,
    depth: int,
    drawn: Drawn,
    heads: dict[str, tuple[str, str]] | None = None,
) -> str:
    """A selection set; `heads` (response key -> field head and name, as first drawn) is
    shared with the inline fragments that flatten into it."""
    selections = []
    heads = {} if heads is None else heads
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field", "field", "field", "inline", "spread"]))
        if kind == "field" or depth >= 3:
            selection = draw(fields(parent, depth, drawn, heads))
        elif kind == "inline":
            choices = CONDITIONS if drawn.mistake(draw, "type") else POSSIBLE[parent]
            condition = draw(st.sampled_from(choices))
            scope = condition or parent
            shared = heads if scope == parent else None
            inner = draw(selection_sets(scope, depth + 1, drawn, shared))
            on = f" on {condition}" if condition else ""
            selection = f"...{on}{draw(directives(drawn))} {inner}"
        else:
            name = draw(st.sampled_from(["F", "G"])) + parent  # one set per type
            if drawn.mistake(draw, "fragment"):
                name = draw(st.sampled_from(["Missing", "FNode", "GOther"]))
            if name != "Missing" and name not in drawn.fragments:
                drawn.fragments[name] = ""  # in progress: a spread of it inside is a cycle
                condition = parent
                if drawn.mistake(draw, "type"):
                    condition = draw(st.sampled_from(["Node", "Thing", "Other"]))
                inner = draw(selection_sets(condition, depth + 1, drawn))
                drawn.fragments[name] = f"fragment {name} on {condition} {inner}"
            selection = f"...{name}{draw(directives(drawn))}"
        selections.extend([selection] * draw(st.integers(1, 3)))  # repeated as sent
    return "{ " + " ".join(selections) + " }"


@st.composite
def fields(
    draw: st.DrawFn,
    parent: str,
    depth: int,
    drawn: Drawn,
    heads: dict[str, tuple[str, str]] | None = None,
) -> str:
    """A field of `parent`. A response key drawn before in the same set (`heads`) comes back
    as it was (so that it merges), unless this document makes conflicts: then the same field
    gets arguments drawn afresh, or another field takes its key."""
    heads = {} if heads is None else heads
    name = draw(st.sampled_from(FIELDS.get(parent, ["id"])))
    if drawn.mistake(draw, "name"):
        name = "nope"
    alias = draw(st.sampled_from(["", "", "", "", "", "x", "y"]))
    key = alias or name
    if key in heads and not drawn.mistake(draw, "conflict"):
        text, name = heads[key]
    else:
        again = key in heads and ARGUMENTS.get(heads[key][1]) and draw(st.integers(0, 3))
        if again:
            name = heads[key][1]  # the same field, every argument drawn afresh
        arguments = []
        for argument in ARGUMENTS.get(name, []):
            if again or argument == "id" or draw(st.booleans()):
                value = draw(st.sampled_from(VALUES[argument]))
                if value.startswith("$"):
                    drawn.variables.add(value[1:])
                arguments.append(f"{argument}: {value}")
        text = (f"{alias}: " if alias else "") + name
        text += f"({', '.join(arguments)})" if arguments else ""
        text += draw(directives(drawn))
        heads.setdefault(key, (text, name))
    child = RETURNS.get((parent, name))
    if child is not None and depth < 3:
        text += " " + draw(selection_sets(child, depth + 1, drawn))
    elif child is not None and not drawn.mistake(draw, "leaf"):
        text += " { id }"
    return text


@st.composite
def directives(draw: st.DrawFn, drawn: Drawn) -> str:
    choice = draw(st.sampled_from(["", "", "", " @include(if: true)", " @skip(if: $flag)"]))
    if "$flag" in choice:
        drawn.variables.add("flag")
    return choice


@st.composite
def documents(draw: st.DrawFn) -> str:
    drawn = Drawn(draw(st.sampled_from([None, None, None, "conflict", *MISTAKES])))
    body = draw(selection_sets("Query", 1, drawn))
    names = sorted(drawn.variables | ({"v"} if drawn.mistake(draw, "variable") else set()))
    declared = ", ".join(f"${name}: {VARIABLES[name]}" for name in names)
    head = f"query Q({declared}) " if declared else ""
    fragments = " ".join(text for text in drawn.fragments.values() if text)
    return f"{head}{body} {fragments}"


@st.composite
def attacks(draw: st.DrawFn) -> str:
    """One generated selection repeated up to the token cap, inline or through fragments."""
    drawn = Drawn(draw(st.sampled_from([None, *MISTAKES])))
    selection = draw(fields("Query", 2, drawn))
    times = draw(st.integers(10, 2000))
    shape = draw(st.sampled_from(["flat", "inline", "fragment", "distinct fragments", "chain"]))
    if shape == "flat":
        body = "{ " + f"{selection} " * times + "}"
    elif shape == "inline":
        body = "{ " + f"... on Query {{ {selection} }} " * times + "}"
    elif shape == "fragment":
        body = "{ " + "...R " * times + "}"
        drawn.fragments["R"] = f"fragment R on Query {{ {selection} }}"
    elif shape == "chain":
        count = min(times, 800)
        body = "{ ...R0 }"
        for i in range(count):
            drawn.fragments[f"R{i}"] = f"fragment R{i} on Query {{ ...R{i + 1} {selection} }}"
        drawn.fragments[f"R{count}"] = f"fragment R{count} on Query {{ {selection} }}"
    else:
        count = min(times, 400)
        body = "{ " + " ".join(f"...R{i}" for i in range(count)) + " }"
        for i in range(count):
            drawn.fragments[f"R{i}"] = f"fragment R{i} on Query {{ {selection} }}"
    declared = ", ".join(f"${name}: {VARIABLES[name]}" for name in sorted(drawn.variables))
    head = f"query Q({declared}) " if declared else ""
    return head + body + " " + " ".join(drawn.fragments.values())


def plain_errors(query: str) -> list[GraphQLError] | None:
    """graphql-core's own verdict on the document as sent; `None` when it did not get to one
    (past the token cap, or its own work budget aborted it)."""
    try:
        document = parse(query, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        return [error]
    errors = validate(SCHEMA, document, [*specified_rules, FiniteFloatsRule])
    if any("aborted" in error.message for error in errors):
        return None
    return errors


def answer(schema: GraphQLSchema, result: ExecutionResult) -> tuple[Any, list[Any]]:
    errors = sorted((e.message, str(e.path)) for e in result.errors or ())
    return result.data, errors


def handled(query: str) -> None:
    executor = GraphQLExecutor(SCHEMA)
    try:
        prepared = executor.prepare(query)
    except RequestErrors as refusal:
        assert refusal.errors
        codes = {getattr(e.original_error, "code", "BAD_USER_INPUT") for e in refusal.errors}
        assert codes <= {"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"}, codes
        if "QUERY_TOO_COMPLEX" in codes:
            return  # refused before or instead of graphql-core's verdict: past a bound
        plain = plain_errors(query)
        assert plain is None or plain, f"refused, but graphql-core accepts: {refusal.errors}"
        return
    plain = plain_errors(query)
    assert plain is None or not plain, f"accepted, but graphql-core refuses: {plain}"
    sent = execute_sync(SCHEMA, prepared.document, ROOT)
    validated = execute_sync(SCHEMA, merged(prepared.document), ROOT)
    assert answer(SCHEMA, sent) == answer(SCHEMA, validated)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_every_document_is_handled_as_graphql_core_judges_it(query: str) -> None:
    handled(query)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attacks())
def test_every_repeated_document_under_the_token_cap_is_handled(query: str) -> None:
    handled(query)


def test_the_generator_draws_valid_and_invalid_documents_alike() -> None:
    """The properties above mean something only if both verdicts come up."""
    verdicts: set[bool] = set()
    merges = 0

    @settings(max_examples=200, deadline=None, database=None)
    @given(documents())
    def sample(query: str) -> None:
        nonlocal merges
        plain = plain_errors(query)
        verdicts.add(not plain)
        document = parse(query)
        merges += len(str(merged(document).to_dict())) < len(str(document.to_dict()))

    sample()
    assert verdicts == {True, False}
    assert merges > 0
