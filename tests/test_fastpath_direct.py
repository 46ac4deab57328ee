"""Resolvers called without strawberry's wrapper (`fastpath.direct`): the same answers.

A schema of its own with what a direct call must get right (Python names of arguments,
defaults, omitted arguments, `self`, `root`, `info`, synchronous and asynchronous resolvers,
`Requires` before and after loading, an error raised by the resolver) and what must keep
strawberry's way (enum and input-object arguments, another field extension). Each query runs
on the fast path and on graphql-core for three principals; the outcomes must be equal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import FieldExtension

from bff.auth import ANONYMOUS, Authenticated, OwnerOr, Principal, Scopes
from bff.graph.permissions import requires
from bff.graphql.executor import GraphQLExecutor
from bff.graphql.fastpath.plan import RESOLVE, OperationPlan
from tests.test_fastpath import Outcome, fast_and_reference


@dataclass
class Context:
    principal: Principal
    calls: list[str]


class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.input
class Range:
    low: int
    high: int = 10


@strawberry.type
class Note:
    owner: int
    text: str


class Shout(FieldExtension):
    """Not a `Requires`: the field keeps strawberry's wrapper."""

    def resolve(self, next_: Any, source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


def owner_of(note: Note) -> int:
    return note.owner


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, info: strawberry.Info, some_text: str, times: int = 2) -> str:
        info.context.calls.append("echo")
        return some_text * times

    @strawberry.field
    async def later(self, root: Any, label: str | None = strawberry.UNSET) -> str:
        await asyncio.sleep(0)
        return f"{root is self}:{'unset' if label is strawberry.UNSET else label}"

    @strawberry.field
    def named(self, number: strawberry.ID, ratio: float = 0.5, on: bool | None = None) -> str:
        return f"{number!r}/{ratio!r}/{on!r}"

    @strawberry.field
    async def failing(self, why: str) -> str | None:
        raise ValueError(why)

    @strawberry.field(extensions=requires(Scopes("notes:read")))
    def scoped(self) -> str | None:
        return "scoped"

    @strawberry.field(extensions=requires(Scopes("notes:read")))
    async def scoped_later(self, text: str) -> str:
        return text

    @strawberry.field(extensions=requires(OwnerOr("notes:any"), owner_of_result=owner_of))
    async def note(self, owner: int) -> Note | None:
        return Note(owner=owner, text=f"note of {owner}")

    @strawberry.field(extensions=requires(OwnerOr("notes:any"), owner_of_result=owner_of))
    def note_now(self, owner: int) -> Note | None:
        return Note(owner=owner, text="now")

    @strawberry.field(
        extensions=[*requires(Authenticated()), *requires(OwnerOr("x"), owner_of_result=owner_of)]
    )
    async def layered(self, owner: int) -> Note | None:
        return Note(owner=owner, text="layered")

    @strawberry.field
    def paint(self, color: Color) -> str:
        return color.name

    @strawberry.field
    def span(self, range: Range) -> int:
        return range.high - range.low

    @strawberry.field(extensions=[Shout()])
    def shout(self, text: str) -> str:
        return text


EXECUTOR = GraphQLExecutor(strawberry.Schema(query=Query)._schema)
PRINCIPALS = {
    "anonymous": ANONYMOUS,
    "user 1 with notes:read": Principal(sub="1", scopes=frozenset({"notes:read"})),
    "user 2": Principal(sub="2"),
}
QUERIES = [
    '{ echo(someText: "ab") a: echo(someText: "c", times: 3) }',
    '{ later b: later(label: "x") c: later(label: null) }',
    '{ named(number: "7") b: named(number: 8, ratio: 2, on: true) }',
    '{ failing(why: "down") echo(someText: "up") }',
    '{ scoped scopedLater(text: "t") }',
    '{ scopedLater(text: "t") note(owner: 1) { text } }',  # refused, one non-null: both errors
    "{ note(owner: 1) { owner text } other: note(owner: 2) { text } }",
    "{ noteNow(owner: 2) { text } layered(owner: 1) { owner } }",
    '{ paint(color: BLUE) span(range: {low: 3}) shout(text: "hi") }',
]


def run(query: str, who: Principal) -> tuple[Outcome, Outcome]:
    return fast_and_reference(EXECUTOR, query, lambda: Context(who, []))


@pytest.mark.parametrize("who", list(PRINCIPALS))
@pytest.mark.parametrize("query", QUERIES)
def test_a_direct_call_answers_as_strawberrys_wrapper(query: str, who: str) -> None:
    fast, reference = run(query, PRINCIPALS[who])
    assert fast == reference


def test_the_checks_refuse_and_let_through_by_principal() -> None:
    fast, _ = run("{ scoped note(owner: 1) { text } }", PRINCIPALS["user 2"])
    assert fast[0] == '{"scoped": null, "note": null}'
    assert [e.count("FORBIDDEN") for e in fast[1]] == [1, 1]
    fast, _ = run("{ scoped note(owner: 1) { text } }", PRINCIPALS["user 1 with notes:read"])
    assert fast == ('{"scoped": "scoped", "note": {"text": "note of 1"}}', ())


def test_only_fields_strawberry_would_merely_rename_for_are_called_directly() -> None:
    direct = {}
    for query in QUERIES:
        plan = EXECUTOR.plan(EXECUTOR.prepare(query), None)
        assert isinstance(plan, OperationPlan)
        for planned in plan.root.fields:
            assert planned.kind == RESOLVE
            direct[planned.name] = planned.call is not None
    assert direct == {
        "echo": True,
        "later": True,
        "named": True,
        "failing": True,
        "scoped": True,
        "scopedLater": True,
        "note": True,
        "noteNow": True,
        "layered": True,
        "paint": False,  # an enum argument becomes a `Color`
        "span": False,  # an input object becomes a `Range`
        "shout": False,  # not a `Requires`
    }
