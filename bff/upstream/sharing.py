"""`InFlight`: identical idempotent calls in flight at once are made once and shared.

A popular page asks one upstream the same thing many times a second; while the first call is
on the wire, every identical one (same method, target and header lines: the identity headers
the gateway sends are among them) waits for its answer instead of sending its own. It sits
above the retry layer, so a shared call is retried once for everyone, and below nothing that
differs per caller.

Three promises, each tested: a waiter that is cancelled (its client hung up) leaves the call
running for the others (the call is cancelled only when nobody waits for it any more); a
failure of the call is every sharer's failure, raised to each, never a hang; and a call that
has finished is forgotten at once, so nothing is served from here after its answer arrived
(that is the response cache's job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

# Methods whose identical requests may share one answer: safe, and never with a body.
SHAREABLE = frozenset({"GET", "HEAD"})


class _Call(Generic[T]):
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.task = task
        self.waiters = 0


class InFlight(Generic[T]):
    """The calls of one upstream in flight, by key; `on_shared` counts each joined call."""

    def __init__(self, on_shared: Callable[[], None] | None = None) -> None:
        self._calls: dict[Hashable, _Call[T]] = {}
        self.on_shared = on_shared

    def __len__(self) -> int:
        return len(self._calls)

    async def share(self, key: Hashable, start: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The result of the call in flight under `key`, or of `start()` begun now; and
        whether this caller joined a call another one started."""
        call = self._calls.get(key)
        joined = call is not None
        if call is None:
            call = _Call(asyncio.ensure_future(start()))
            self._calls[key] = call
            call.task.add_done_callback(lambda task: self._forget(key, task))
        elif self.on_shared is not None:
            self.on_shared()
        call.waiters += 1
        try:
            # shielded: a cancelled waiter must not cancel the call for the others
            return await asyncio.shield(call.task), joined
        finally:
            call.waiters -= 1
            if call.waiters == 0 and not call.task.done():
                # nobody is left to read its answer; a caller arriving now starts afresh
                if self._calls.get(key) is call:
                    del self._calls[key]
                call.task.cancel()

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:
        call = self._calls.get(key)
        if call is not None and call.task is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it raised already
