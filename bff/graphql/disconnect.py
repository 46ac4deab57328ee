"""Stop a request's work when its client hangs up.

Nothing else tells a handler that the client is gone: the server only marks the connection
closed, and the request would go on loading and building an answer nobody reads. While a
request executes, `cancel_on_disconnect` watches the ASGI receive channel (its body has been
read, so the next message is `http.disconnect`) and cancels the request's task when that
message comes: pending upstream calls are abandoned and no further level starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, or raise `ClientDisconnected` (with `work` cancelled) once the client
    disconnects. Call it only after the request body has been read."""
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.get_running_loop().create_task(_watch(receive, task))
    try:
        return await work
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            task.uncancel()  # our own cancellation: the request ends here, not the server
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()


async def _watch(receive: Receive, task: asyncio.Task[object]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()
