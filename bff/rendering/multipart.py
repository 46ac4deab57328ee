"""Incremental delivery over HTTP: `multipart/mixed` as Apollo Client asks for and reads it.

A client that sends `Accept: multipart/mixed;deferSpec=20220824, application/json` gets a
deferred operation's answer in parts: each part is one JSON object preceded by the boundary
line `---` and its own `Content-Type`, the first `{"data": ..., "hasNext": true}`, the later
ones `{"incremental": [...], "hasNext": ...}`, and the body ends with the closing boundary
`-----`. A client whose `Accept` does not name `multipart/mixed` is answered in one piece.

Each part is sent together with the boundary line after it (as Apollo Router sends them):
a reader knows a part is whole when it sees the next boundary, so the first part must not
wait for the second one's bytes to be read.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

MULTIPART = "multipart/mixed"
DEFER_SPEC = "20220824"
BOUNDARY = "-"
CONTENT_TYPE = f'{MULTIPART}; boundary="{BOUNDARY}"; deferSpec={DEFER_SPEC}'
OPENING = b"\r\n---"  # the first boundary; each part then brings the one after it
PART_HEAD = b"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
CLOSING = b"--\r\n"  # after the last part's boundary: `\r\n-----\r\n`


@lru_cache(maxsize=256)  # clients send a handful of distinct headers: parse each once
def accepts_multipart(accept: str | None) -> bool:
    """Whether the client reads `multipart/mixed` parts in the 2022-08-24 defer format (a
    `deferSpec` naming another version does not count; none at all does)."""
    if not accept:
        return False
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() != MULTIPART:
            continue
        spec, quality = DEFER_SPEC, 1.0
        for param in params:
            name, _, value = param.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "deferspec":
                spec = value
            elif name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if spec == DEFER_SPEC and quality > 0:
            return True
    return False


def part(payload: dict[str, Any]) -> bytes:
    """One part: its headers, its JSON and the boundary after it."""
    return PART_HEAD + orjson.dumps(payload) + OPENING
