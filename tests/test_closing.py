"""Shutdown closes everything even when one part fails to close (`bff.closing`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bff.closing import close_every


def test_a_closer_that_raises_does_not_stop_the_ones_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[str] = []

    async def first() -> None:
        closed.append("first")

    async def broken() -> None:
        raise RuntimeError("the connection was already gone")

    async def last() -> None:
        closed.append("last")

    with caplog.at_level(logging.WARNING, logger="bff.shutdown"):
        asyncio.run(close_every([first, broken, last]))
    assert closed == ["first", "last"]
    (record,) = caplog.records
    assert "broken" in record.getMessage() and "already gone" in record.getMessage()


def test_cancellation_is_not_swallowed() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(close_every([cancelled]))
