"""Level-wise execution of a plan: each field runs once for all parents of a level.

`start` takes the parents of one selection (their records, their result dicts, their places)
and goes through the fields in order (`__typename` came with the result dict's template):
attributes are filled in at once, a
field that needs I/O becomes a unit of work. The units of a level run concurrently, and a
unit starts the next level of its own field as soon as its values are in, so a query's
critical path is one upstream call per level, as with one dataloader batch per level.

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
from bff.graphql.fastpath.outcome import Outcome, Pos
from bff.graphql.fastpath.plan import ATTR, BATCH, FieldPlan, Selection
from bff.graphql.fastpath.resolving import Resolving

Units = list[Coroutine[Any, Any, None]]
YIELD_EVERY = 20_000  # values built between two turns given to the event loop


class Engine(Completion, Resolving):
    async def run(self, root: Selection) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        """Execute from `root`; `ResponseTooLarge` when the response would pass `limit`."""
        plan = self.plan
        self.next_yield = YIELD_EVERY
        data = root.template.copy()
        holder = {"data": data}
        self.root = Pos(None, "data", holder, True, 0)
        self.outcome = Outcome(self.root)
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
        return holder["data"], self.outcome.errors

    @staticmethod
    async def units(units: Units) -> None:
        if len(units) == 1:
            await units[0]
        elif units:
            await asyncio.gather(*units)

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
        for field in fields:
            kind = field.kind
            if kind == ATTR:
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
        return units

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
