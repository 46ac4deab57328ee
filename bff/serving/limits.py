"""`EdgeLimits`: what bounds a client connection (SPEC section 15), as the server applies it.

The values come from the `server` section of the config (`max_header_size`, `header_timeout`,
...), read off the app `create_app` built (`app.state.settings`) so that every way of serving
it (`bff serve`, its workers, `bff demo`, the tests' background servers) applies the same
limits without passing them along; an app without settings gets the embedded defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_header_size: int = 32 * 1024  # bytes of request line and header fields
    max_header_count: int = 100
    header_timeout: float = 10.0  # seconds to receive a whole head
    body_timeout: float = 30.0  # seconds a body may go without a byte
    idle_timeout: float = 60.0  # seconds between keep-alive requests
    max_connections: int = 10_000  # open client connections per process

    @classmethod
    def of_server(cls, server: Any) -> Self:
        """From anything with these attributes: the `server` config section (a
        `bff.config.ServerConfig`, which this layer does not import)."""
        return cls(**{f.name: getattr(server, f.name) for f in fields(cls)})

    @classmethod
    def for_app(cls, app: Any) -> Self:
        """The limits `app`'s settings configure, or the defaults."""
        settings = getattr(getattr(app, "state", None), "settings", None)
        server = getattr(settings, "server", None)
        return cls() if server is None else cls.of_server(server)
