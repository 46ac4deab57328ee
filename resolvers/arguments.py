"""Client-supplied arguments turned into values the upstreams accept, or `BadUserInput`."""

from __future__ import annotations

import base64
import binascii

from bff.errors import BadUserInput

MAX_PAGE = 1000
CURSOR_PREFIX = "o:"


def parse_id(value: str, what: str = "id") -> int:
    """An `ID` is a positive integer written as a string."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise BadUserInput(f"{what} must be a positive integer id, got {str(value)[:40]!r}")
    return int(text)


def page_size(first: int | None, default: int) -> int:
    size = default if first is None else first
    if size < 0 or size > MAX_PAGE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE}")
    return size


def encode_cursor(offset: int) -> str:
    """An opaque cursor naming a position in a list."""
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{offset}".encode()).decode().rstrip("=")


def offset_after(cursor: str | None) -> int:
    """The offset of the first item after `cursor` (0 without a cursor)."""
    if cursor is None:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadUserInput("after is not a valid cursor") from exc
    number = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not number.isdigit() or len(number) > 9:
        raise BadUserInput("after is not a valid cursor")
    return int(number) + 1
