"""`UpstreamResponse`: one upstream answer, as the pool, the shared calls and the cache pass it."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from bff.errors import BadUpstreamResponse
from bff.upstream.http11 import Headers


class UpstreamResponse(msgspec.Struct, frozen=True):
    """A struct, not a frozen dataclass: one is made per upstream call, and a struct is
    built in C (a frozen dataclass's `__init__` sets each field through `object.__setattr__`,
    ten times the cost)."""

    status: int
    body: bytes | bytearray
    headers: Headers
    upstream: str
    kept: bool = False  # served from the response cache's memory: the stored body itself

    def json(self) -> Any:
        """The decoded body; an unreadable body is the upstream's fault, never the caller's."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise BadUpstreamResponse(self.upstream) from exc
