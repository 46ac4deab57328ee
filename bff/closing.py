"""Closing many things on shutdown, each whatever the others did.

A shutdown that stops at the first closer to raise leaves everything after it open: upstream
connections that outlive their loop, a telemetry batch never flushed. Every closer runs; a
failure is logged with what failed, and the next one still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

logger = logging.getLogger("bff.shutdown")


async def close_every(closers: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Await each closer in turn; one that raises is logged, and the rest still run."""
    for close in closers:
        try:
            await close()
        except Exception as exc:  # shutdown goes on whatever one part raised
            name = getattr(close, "__qualname__", repr(close))
            logger.warning("closing %s failed: %s: %s", name, type(exc).__name__, exc)
