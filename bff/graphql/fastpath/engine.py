"""Level-wise execution of a plan: each field runs once for all parents of a level.

`start` takes the parents of one selection (their records, their result dicts, their places)
and goes through the fields in order (`__typename` came with the result dict's template):
attributes are filled in at once (the scalar ones in one loop per selection, `rows`), a
field that needs I/O becomes a unit of work. The units of a level run concurrently, and a
unit starts the next level of its own field as soon as its values are in, so a query's
critical path is one upstream call per level, as with one dataloader batch per level.

A deferred fragment met on the way starts as a task of its own (`defer`, `deferral`): the
first part is what `run` returns once the rest is done.

Values become the response in `completion`. The errors of each step (the root's fields, or a
unit's values arriving, with all that completes at once below them) are settled when the
step ends (`Outcome.flush`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

from graphql import GraphQLError

from bff.graphql.fastpath.completion import Completion
from bff.graphql.fastpath.deferral import Group, Parts
from bff.graphql.fastpath.outcome import Boundary, Outcome, Pos, boundary
from bff.graphql.fastpath.plan import ATTR, BATCH, FieldPlan, Selection
from bff.graphql.fastpath.resolving import Resolving

Units = list[Coroutine[Any, Any, None]]
YIELD_EVERY = 20_000  # values built between two turns given to the event loop


class Engine(Completion, Resolving):
    parts: Parts | None = None  # the deferred fragments, when the plan answers in parts

    async def run(self, root: Selection) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        """Execute from `root`; `ResponseTooLarge` when the response would pass `limit`.
        With deferred fragments, what it returns is the first part (`parts` has the rest)."""
        plan = self.plan
        self.next_yield = YIELD_EVERY
        data = root.template.copy()
        holder = {"data": data}
        self.root = Pos(None, "data", holder, True, 0)
        self.outcome = Outcome(self.root)
        if plan.deferring:
            self.parts = Parts(self.outcome)
        parents = [self.root]
        if plan.serial:  # mutations: each root field and all below it, one after the other
            for field in root.fields:
                if self.outcome.is_dead(self.root):
                    break
                units = self.start(root, [field], [None], [data], parents)
                self.outcome.flush(parents)
                await self.units(units)
        else:
            units = self.start(root, root.fields, [None], [data], parents)
            self.outcome.flush(parents)
            await self.units(units)
        parts = self.parts
        if parts is not None:
            parts.assign()
            return holder["data"], parts.first_errors
        return holder["data"], self.outcome.errors

    @staticmethod
    async def units(units: Units) -> None:
        """Run the units concurrently: all but the first as tasks started in this step (as
        `gather` starts them), the first in this task, then the others awaited in turn.
        `gather`'s future, its Python callback per unit and a task for every unit cost a
        Dashboard's two sibling levels more than the work they start. A unit that raises
        (the response grew too large, or a bug) or a cancelled request stops the others."""
        if len(units) == 1:
            await units[0]
            return
        if not units:
            return
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(unit) for unit in units[1:]]
        try:
            await units[0]
            for task in tasks:
                await task
        except BaseException:
            for task in tasks:
                if not task.cancel() and not task.cancelled():
                    task.exception()  # done: its error is retrieved (no "never retrieved" log)
            raise

    def start(
        self,
        selection: Selection,
        fields: list[FieldPlan],
        sources: list[Any],
        outs: list[dict[str, Any]],
        places: list[Pos],
        units: Units | None = None,
    ) -> Units:
        """Run `fields` for these parents: synchronous ones now, the others as units."""
        if units is None:
            units = []
        outcome = self.outcome
        if outcome.kills:  # nothing runs below a place nulled by an earlier step
            alive = [i for i, place in enumerate(places) if not outcome.is_dead(place)]
            if len(alive) < len(places):
                sources = [sources[i] for i in alive]
                outs = [outs[i] for i in alive]
                places = [places[i] for i in alive]
            if not places:
                return units
        rows = selection.rows
        if rows is not None and fields is selection.fields:  # not a mutation's one root field
            fields = selection.rest
            stopped = rows.fill(sources, outs)
            if stopped >= 0:  # from that parent on, each field the general way
                odd = sources[stopped:], outs[stopped:], places[stopped:]
                for field in rows.fields:
                    self.read_leaves(field, *odd)
        for field in fields:
            kind = field.kind
            if kind == ATTR:
                shape = field.shape
                if shape is not None and shape.inline:
                    self.read_leaves(field, sources, outs, places)
                else:
                    self.settle(field, self.read(field, sources), outs, places, units)
            elif kind == BATCH:
                batched = self.batch(field, sources)
                if isinstance(batched, list):
                    self.settle(field, batched, outs, places, units)
                else:
                    units.append(self.complete_later(field, batched, outs, places))
            else:
                values, pending = self.resolve(field, sources, places)
                if pending:
                    gathered = self.gather(values, pending)
                    units.append(self.complete_later(field, gathered, outs, places))
                else:
                    self.settle(field, values, outs, places, units)
        if selection.deferred:
            self.defer(selection, sources, places)
        return units

    def read_leaves(
        self, field: FieldPlan, sources: list[Any], outs: list[dict[str, Any]], places: list[Pos]
    ) -> None:
        """An attribute scalar: read, checked and stored in one pass over the parents (no list
        of values in between); the odd values are completed like any other field's."""
        shape, read = field.shape, field.read
        assert shape is not None and read is not None
        try:
            plain = self.plain_leaves(shape, field.key, map(read, sources), outs)
        except Exception:  # a read failed: the general way, each parent's read on its own
            self.complete(field, self.read(field, sources), outs, places)
            return
        assert plain is not None
        rest, odd = plain
        if rest:
            self.complete(field, odd, [outs[i] for i in rest], [places[i] for i in rest])

    def defer(self, selection: Selection, sources: list[Any], places: list[Pos]) -> None:
        """Start the fragments deferred on these parents, each as a task of its own."""
        parts = self.parts
        assert parts is not None
        enclosing = _group_of(places[0])
        made: dict[Any, Group] = {}
        for deferred in selection.deferred:
            usage = deferred.usage
            assert usage is not None
            group = Group(deferred, made.get(usage.parent_defer_usage, enclosing), places)
            made[usage] = group
            outs: list[dict[str, Any]] = []
            boundaries: list[Pos] = []
            for place in places:
                box = {"data": deferred.template.copy()}
                group.boxes.append(box)
                outs.append(box["data"])
                boundaries.append(boundary(place, box, group))
            parts.groups.append(group)
            units = self.start(deferred, deferred.fields, sources, outs, boundaries)
            group.task = asyncio.ensure_future(self.units(units))

    async def complete_later(
        self, field: FieldPlan, values: Awaitable[list[Any]], outs: list[Any], places: list[Pos]
    ) -> None:
        units: Units = []
        settled = await values
        if self.built >= self.next_yield:  # a big response: let other requests in meanwhile
            self.next_yield = self.built + YIELD_EVERY
            await asyncio.sleep(0)
        self.settle(field, settled, outs, places, units)
        self.outcome.flush(places)
        await self.units(units)

    def settle(
        self,
        field: FieldPlan,
        values: list[Any],
        outs: list[dict[str, Any]],
        places: list[Pos],
        units: Units,
    ) -> None:
        """Complete the values of `field`, then start the level below it."""
        below = self.complete(field, values, outs, places)
        if below is not None:
            selection = below.selection
            assert selection is not None
            self.start(selection, selection.fields, below.sources, below.outs, below.places, units)


def _group_of(place: Pos | None) -> Group | None:
    """The deferred fragment `place` is in (None: the first part)."""
    while place is not None:
        if type(place) is Boundary:
            group: Group = place.group
            return group
        place = place.parent
    return None
