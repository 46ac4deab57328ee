"""`UpstreamResponse`: one upstream answer, as the pool, the shared calls and the cache pass it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bff.errors import BadUpstreamResponse
from bff.upstream.http11 import Headers


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
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
