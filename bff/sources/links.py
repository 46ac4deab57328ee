"""Links: fields joining a generated type to another source's operation, batched.

A link whose `argument` is a query parameter sends every key of one level of a query in one
call (`?ids=1,2,3`, at most `sources[].max_batch` keys a call), then matches the answer's
items to the keys by `match`. A link whose `argument` is a path parameter makes one call per
distinct key, concurrently. Either way the loader is the request's (`Loaders.keyed`), so each
key is asked once per request, and the engine's batch hook gives it its span and metric.
A 404 for one key of a path link is that field's `null`, with no error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from bff.errors import BadUpstreamResponse, BffError
from bff.graph.context import AnyContext
from bff.graph.loader import BatchLoader
from bff.sources.access import SourceAccess
from bff.sources.calls import Argument, Call


@dataclass(frozen=True)
class LinkPlan:
    """What a link field needs at run time. Its call's answer is decoded to the value at
    `result` (`Records.link_decoder`): the items, or the one item of a path link."""

    name: str  # `Type.field`, the loader's key in the request
    read_key: Callable[[Any], Any]  # the parent record's key
    call: Call
    argument: Argument
    path_argument: bool
    read_match: Callable[[Any], Any] | None  # an item record's `match` (query links)
    item_record: type | None  # the record class of an item (query links)
    many: bool  # `list: true`
    max_batch: int


class LinkLoader(BatchLoader[Hashable, Any, Any]):
    """The loader of one link in one request."""

    def __init__(self, clients: Any, plan: LinkPlan) -> None:
        super().__init__(clients)
        self.plan = plan
        self.upstream = plan.call.upstream
        self.pool = clients.pools[plan.call.upstream]
        self.identity = clients.headers

    async def batch_load_fn(self, keys: list[Hashable]) -> list[Any]:
        if self.plan.path_argument:
            return list(await asyncio.gather(*(self.one(key) for key in keys)))
        size = self.plan.max_batch
        if len(keys) <= size:
            return await self.chunk(keys)
        chunks = [keys[i : i + size] for i in range(0, len(keys), size)]
        done = await asyncio.gather(*(self.chunk(chunk) for chunk in chunks))
        return [value for values in done for value in values]

    async def one(self, key: Hashable) -> Any:
        """A path link: the answer for one key (`None` on 404)."""
        plan = self.plan
        try:
            return await plan.call.send(self.pool, self.identity, {plan.argument.graphql: key})
        except BffError as error:
            return error

    async def chunk(self, keys: Sequence[Hashable]) -> list[Any]:
        """A query link: one call for `keys`, its items realigned to them."""
        plan = self.plan
        try:
            items = await plan.call.send(
                self.pool, self.identity, {plan.argument.graphql: list(keys)}
            )
        except BffError as error:
            return [error] * len(keys)
        if not isinstance(items, list):
            return [BadUpstreamResponse(plan.call.upstream)] * len(keys)
        assert plan.read_match is not None and plan.item_record is not None
        if plan.many:
            grouped: dict[Any, list[Any]] = {key: [] for key in keys}
            record, read_match = plan.item_record, plan.read_match
            for item in items:
                found = grouped.get(read_match(item)) if type(item) is record else None
                if found is not None:
                    found.append(item)
            return [grouped[key] for key in keys]
        return list(map(first_of_each(items, plan.item_record, plan.read_match).get, keys))


def first_of_each(
    items: list[Any], record: type, read_match: Callable[[Any], Any]
) -> dict[Any, Any]:
    """The first item of each matched value; an item that is not a record matches none."""
    if {record}.issuperset(map(type, items)):  # records all: matched in C
        backwards = items[::-1]  # the last one written of a key is its first item
        return dict(zip(map(read_match, backwards), backwards, strict=True))
    first: dict[Any, Any] = {}
    for item in items:
        if type(item) is record:
            first.setdefault(read_match(item), item)
    return first


def link_form(plan: LinkPlan, loader_class: type[LinkLoader], access: SourceAccess) -> Any:
    """The batch form of the link field: the keys of all parents, one load (none when the
    caller may not read the target source)."""
    read_key, name = plan.read_key, plan.name

    def make(clients: Any) -> LinkLoader:
        return loader_class(clients, plan)

    async def form(ctx: AnyContext, parents: Sequence[Any]) -> list[Any]:
        refused = access.refusal(ctx.principal)
        if refused is not None:
            return [refused] * len(parents)
        loader = ctx.loaders.keyed(name, make)
        keys = list(map(read_key, parents))
        if SCALAR_KEYS.issuperset(map(type, keys)):  # in C: no generator step per key
            return list(await loader.load_settled(keys))
        return await mixed_keys(loader, keys)

    return form


SCALAR_KEYS = frozenset((int, str))  # exact types: a bool is not a key


async def mixed_keys(loader: LinkLoader, keys: list[Any]) -> list[Any]:
    """Values for keys that may be absent (`None`: no call) or lists (an array property:
    the matches of all its keys, in order, missing ones dropped)."""
    wanted = [k for key in keys for k in (key if isinstance(key, list) else [key]) if usable(k)]
    loaded = dict(zip(wanted, await loader.load_settled(wanted), strict=True)) if wanted else {}
    values: list[Any] = []
    for key in keys:
        if isinstance(key, list):
            found = [loaded[k] for k in key if usable(k)]
            failed = next((v for v in found if isinstance(v, Exception)), None)
            values.append(failed if failed is not None else flatten(found, loader.plan.many))
        else:
            values.append(loaded[key] if usable(key) else None)
    return values


def usable(key: Any) -> bool:
    return type(key) in SCALAR_KEYS or type(key) is float


def flatten(found: list[Any], many: bool) -> list[Any]:
    if many:
        return [item for items in found for item in items or ()]
    return [item for item in found if item is not None]
