"""Deferred fragments on the fast path: each one's work, and its parts once done.

The engine starts a deferred fragment where its level is reached, for all parents of that
level at once (`Group`): its fields fill result dicts of their own (one per parent, under a
`Boundary`), and its units run as a task of their own, so the first part does not wait for
them and fragments that resolve together still share their batch calls. `Parts` hands out
the later parts: each as soon as some groups are done and the part that holds their place
(the first part, or an enclosing fragment's) went out; one group's parents are the entries
of its `incremental` list. An error belongs to the innermost fragment whose field its path
goes through (`Parts.assign`), or to the first part.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from graphql import GraphQLError

from bff.graphql.ceiling import ResponseTooLarge
from bff.graphql.fastpath.outcome import Outcome, Pos, path_of
from bff.graphql.fastpath.plan import Selection
from bff.graphql.incremental import Increment, Later


class Group:
    """One deferred fragment, started for the parents of one level."""

    __slots__ = ("boxes", "emitted", "errors", "parent", "places", "selection", "task")

    def __init__(self, selection: Selection, parent: Group | None, places: Sequence[Pos]) -> None:
        self.selection = selection
        self.parent = parent  # the fragment holding this one's place; None: the first part
        self.places = places  # the objects it is deferred on
        self.boxes: list[dict[str, Any]] = []  # each parent's `{"data": ...}`
        self.errors: list[list[GraphQLError]] = [[] for _ in places]
        self.task: asyncio.Future[None] | None = None
        self.emitted = False

    @property
    def ready(self) -> bool:
        parent = self.parent
        task = self.task
        return (parent is None or parent.emitted) and task is not None and task.done()


class Parts:
    """The groups of one execution, and which errors went to which part."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.groups: list[Group] = []
        self.first_errors: list[GraphQLError] = []
        self._assigned = 0
        self._indexed = 0
        self._index: dict[tuple[Any, ...], tuple[Group, int]] = {}

    def assign(self) -> None:
        """Hand the errors reported since last time to their parts."""
        errors = self.outcome.errors
        if self._assigned == len(errors):
            return
        index = self._index
        for group in self.groups[self._indexed :]:
            keys = group.selection.template
            for i, place in enumerate(group.places):
                base = tuple(path_of(place))
                for key in keys:
                    index[(*base, key)] = (group, i)
        self._indexed = len(self.groups)
        for error in errors[self._assigned :]:
            path = tuple(error.path or ())
            owner = None
            for end in range(len(path), 0, -1):
                owner = index.get(path[:end])
                if owner is not None:
                    break
            if owner is None:
                self.first_errors.append(error)
            else:
                owner[0].errors[owner[1]].append(error)
        self._assigned = len(errors)

    async def later(self) -> AsyncIterator[Later]:
        """The later parts, each as soon as it may go out; the last says `has_next` false."""
        try:
            while True:
                waiting = [g for g in self.groups if not g.emitted]
                if not waiting:
                    return
                batch: list[Group] = []
                ready = [g for g in waiting if g.ready]
                while ready:  # a group sent now lets the done ones inside it go too
                    for group in ready:
                        group.emitted = True
                    batch.extend(ready)
                    ready = [g for g in self.groups if not g.emitted and g.ready]
                if not batch:
                    running = [g.task for g in waiting if g.task is not None and not g.task.done()]
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                self.assign()
                increments = [i for group in batch for i in self._increments(group)]
                has_next = any(not g.emitted for g in self.groups)
                if increments or not has_next:
                    yield Later(increments, has_next)
        finally:
            for group in self.groups:
                if group.task is not None and not group.task.done():
                    group.task.cancel()

    def _increments(self, group: Group) -> list[Increment]:
        assert group.task is not None
        failure = group.task.exception()
        if failure is not None and not isinstance(failure, ResponseTooLarge):
            raise failure
        label = group.selection.usage.label if group.selection.usage is not None else None
        found = []
        for i, place in enumerate(group.places):
            if self.outcome.is_dead(place):  # nulled meanwhile: its fragment has no place
                continue
            path = path_of(place)
            if failure is not None:  # the response ceiling: the fragment gets one error
                error = GraphQLError(failure.message, original_error=failure)
                found.append(Increment(path, None, [error], label))
                continue
            found.append(Increment(path, group.boxes[i]["data"], group.errors[i], label))
        return found
