"""`HeldHead`: a connection's transport as a request's uvicorn cycle writes to it, holding the
response head back for the body that usually follows within the same turn of the loop.

uvicorn writes a response's head when the app sends `http.response.start` and its body on
each `http.response.body`: two `send` system calls for an answer whose body is ready at once
(almost every one), each paying the kernel's whole loopback or TCP path and waking the client
twice. Holding the first write of a cycle and sending it with the next one makes them one
`writev`; a head whose body does not come within the turn (a stream waiting for its first
event) goes out on its own at the next turn (`call_soon`), so nothing waits on it for long.

Only writes are held, and never past `close()` (which sends what is held first).
"""

from __future__ import annotations

import asyncio
from typing import Any


class HeldHead:
    """One per connection; `arm()` when a cycle starts, so its first write is held."""

    __slots__ = ("_armed", "_held", "_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._armed = False
        self._held: bytes | None = None
        self._pending = False  # a flush is scheduled

    def arm(self) -> None:
        """A cycle starts: its first write (the head, or a `100 Continue`) is held."""
        self._armed = True

    def write(self, data: bytes) -> None:
        """Hold the armed first write; send a held one with the next, in one `writev`."""
        held = self._held
        if held is not None:
            self._held = None
            self.transport.writelines((held, data))
        elif self._armed:
            self._armed = False
            self._held = data
            if not self._pending:
                self._pending = True
                self._loop.call_soon(self._flush_soon)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Send what is held now (the response is complete, or the protocol writes itself)."""
        self._armed = False
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held)

    def _flush_soon(self) -> None:
        self._pending = False
        held = self._held
        if held is not None:
            self._held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # get_extra_info and the rest, as they are
        return getattr(self.transport, name)
