"""`@batched`: one declaration gives a field its batch form, its per-parent resolver and its
permission, so the fast path and graphql-core run the same function with the same checks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType

from bff.auth import ANONYMOUS, Authenticated, Principal
from bff.graph.batch import batch_of, batched, item_of
from bff.graph.fields import BATCH, READ
from bff.graph.permissions import Requires, requires
from bff.graphql.executor import GraphQLExecutor
from bff.graphql.fastpath.plan import DEFINITION
from tests.support import SHOP_SCHEMA

ROOTS = {"Query", "Mutation"}


def test_every_field_with_a_resolver_below_the_root_is_batched() -> None:
    """A resolver written any other way would leave the fast path running it per parent."""
    plain = []
    for type_ in SHOP_SCHEMA.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        if type_.name in ROOTS:
            continue
        for name, field in type_.fields.items():
            definition = field.extensions.get(DEFINITION)
            if definition is None:  # a graphql-core field: the engine's read or batch kinds
                if not field.extensions.keys() & {BATCH, READ}:
                    plain.append(f"{type_.name}.{name}")
                continue
            if definition.base_resolver is not None and batch_of(definition.metadata) is None:
                plain.append(f"{type_.name}.{name}")
    assert plain == []


class Parent:
    def __init__(self, n: int) -> None:
        self.n = n


@strawberry.type
class Thing:
    @batched(permission=requires(Authenticated()), description="Twice n, or an error.")
    async def double(
        ctx: Any, parents: Sequence[Parent], plus: int = 0, label: str | None = strawberry.UNSET
    ) -> list[str | None]:
        values: list[Any] = [
            ValueError("odd") if p.n % 2 else f"{label}:{p.n * 2 + plus}" for p in parents
        ]
        return values

    @batched()
    def plain(ctx: Any, parents: Sequence[Parent]) -> list[int]:
        return [p.n for p in parents]


@strawberry.type
class ToyQuery:
    @strawberry.field
    def things(self) -> list[Thing]:
        return [Parent(1), Parent(2)]  # type: ignore[list-item]


class Context:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal


def test_one_declaration_yields_the_form_the_resolver_and_the_permission() -> None:
    toy = strawberry.Schema(query=ToyQuery)
    assert "double(plus: Int! = 0, label: String): String\n" in toy.as_str()
    assert '"""Twice n, or an error."""' in toy.as_str()
    definition = toy._schema.get_type("Thing").fields["double"].extensions[DEFINITION]  # type: ignore[union-attr]
    assert [type(e) for e in definition.extensions] == [Requires]
    form = batch_of(definition.metadata)
    assert form is not None
    doubled = form(None, [Parent(2), Parent(4)], plus=1, label="x")
    assert asyncio.iscoroutine(doubled)
    assert asyncio.run(doubled) == ["x:5", "x:9"]

    executor = GraphQLExecutor(toy._schema)
    query = '{ things { plain double(plus: 1, label: "y") } }'

    async def run(principal: Principal, reference: bool) -> Any:
        result = await executor.execute(
            executor.prepare(query),
            operation_name=None,
            variables=None,
            context=Context(principal),
            reference=reference,
        )
        return result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or ())

    for principal in (ANONYMOUS, Principal(sub="1")):
        fast, reference = asyncio.run(run(principal, False)), asyncio.run(run(principal, True))
        assert fast == reference
    anonymous = asyncio.run(run(ANONYMOUS, False))
    assert anonymous[0] == {"things": [{"plain": 1, "double": None}, {"plain": 2, "double": None}]}
    assert {message for message, _ in anonymous[1]} == {"Authentication required"}
    signed_in = asyncio.run(run(Principal(sub="1"), False))
    assert signed_in[0] == {"things": [{"plain": 1, "double": None}, {"plain": 2, "double": "y:5"}]}
    assert signed_in[1] == [("odd", ("things", 0, "double"))]


def test_a_batch_form_must_say_its_graphql_type() -> None:
    assert item_of("list[Review]") == "Review"
    assert item_of(list[int]) is int
    with pytest.raises(TypeError, match="must return list"):
        item_of("Review")


@strawberry.type
class Node:
    n: int

    @batched()
    async def children(ctx: Any, parents: Sequence[Node]) -> list[list[Node]]:
        return [[Node(n=p.n * 2), Node(n=p.n * 2 + 1)] for p in parents]  # never waits


@strawberry.type
class TreeQuery:
    @strawberry.field
    def root(self) -> Node:
        return Node(n=1)


def tree(depth: int) -> str:
    selection = "n"
    for _ in range(depth):
        selection = f"n children {{ {selection} }}"
    return "{ root { " + selection + " } }"


def test_a_long_completion_gives_the_event_loop_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers that never wait (a warm dataloader cache) still let other requests in."""
    executor = GraphQLExecutor(strawberry.Schema(query=TreeQuery)._schema)
    prepared = executor.prepare(tree(10))  # 2,047 nodes

    async def turns_during_execution() -> int:
        turns = 0

        async def tick() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0)  # the ticker is running
        before = turns
        result = await executor.execute(prepared, operation_name=None, variables=None, context=None)
        during = turns - before
        ticker.cancel()
        assert result.errors is None and result.data is not None
        return during

    monkeypatch.setattr("bff.graphql.fastpath.engine.YIELD_EVERY", 10**9)
    assert asyncio.run(turns_during_execution()) == 0  # one synchronous block
    monkeypatch.setattr("bff.graphql.fastpath.engine.YIELD_EVERY", 500)
    assert asyncio.run(turns_during_execution()) >= 3  # about every 500 values
