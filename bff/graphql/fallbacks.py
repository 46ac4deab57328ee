"""How often operations leave the fast path for plain graphql-core, and why.

An operation the fast path does not handle (introspection, a directive other than
`@skip`/`@include`, an abstract type...) still gets the right answer from graphql-core, only
slower; `FastPathStats` makes that visible: executions per path, fallbacks by reason. The
first time an operation falls back it is logged at debug level with its reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("bff.graphql")


@dataclass(frozen=True, slots=True)
class Fallback:
    """An operation graphql-core runs instead of the fast path, and why."""

    reason: str


class FastPathStats:
    """Counters of one executor (one per process), read by whoever exposes them."""

    __slots__ = ("fallbacks", "fast", "on_fallback")

    def __init__(self) -> None:
        self.fast = 0  # executions on the fast path
        self.fallbacks: Counter[str] = Counter()  # executions on graphql-core, by reason
        # told of every fallback with its reason (the telemetry's counter, wired by the app)
        self.on_fallback: Callable[[str], None] | None = None

    @property
    def fallback_total(self) -> int:
        return sum(self.fallbacks.values())

    def fell_back(self, reason: str) -> None:
        self.fallbacks[reason] += 1
        if self.on_fallback is not None:
            self.on_fallback(reason)

    @staticmethod
    def first_fallback(operation_name: str | None, reason: str) -> None:
        """An operation was just planned for graphql-core: say so once, with the reason."""
        log.debug("operation %s runs on graphql-core: %s", operation_name or "(anonymous)", reason)

    def snapshot(self) -> dict[str, object]:
        return {"fast": self.fast, "fallbacks": dict(self.fallbacks)}
