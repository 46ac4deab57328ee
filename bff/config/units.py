"""Durations and byte sizes as people write them in `bff.yaml`.

Config files say `250ms` or `1MiB`; code wants seconds as a float and bytes as an int. The
parsers here are the only place that knows the spellings, so every key of those kinds accepts
exactly the same forms and rejects garbage with the same message. `1MB` is 1,000,000 bytes and
`1MiB` is 1,048,576 (SI versus IEC prefixes), as SPEC section 10 fixes.

Error messages never repeat the input: the config loader adds "(got ...)" itself, and only for
keys that are not secret.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator

from bff.config.paths import TypeLabel

DURATION_UNITS: dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}

_NUMBER_WITH_UNIT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)\s*$")

DURATION_HINT = "use a number of seconds or a number with a unit: 250ms, 2s, 5m, 1h, 7d"
SIZE_HINT = (
    "use a number of bytes or a number with a unit: B, KB, KiB, MB, MiB, GB, GiB "
    "(1MB = 1,000,000 bytes, 1MiB = 1,048,576)"
)


def _split(value: Any, kind: str, hint: str) -> tuple[Decimal, str]:
    """Split a number-with-unit into (number, unit as written); bare numbers get unit ''."""
    if isinstance(value, bool):  # bool is an int subclass; `true` is never a duration or size
        raise ValueError(f"not a {kind}; {hint}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"not a {kind}; {hint}")
        number, unit = Decimal(repr(value)) if isinstance(value, float) else Decimal(value), ""
    elif isinstance(value, str) and (match := _NUMBER_WITH_UNIT.match(value)):
        try:
            number = Decimal(match.group(1))
        except InvalidOperation:  # pragma: no cover - the regex only admits decimals
            raise ValueError(f"not a {kind}; {hint}") from None
        unit = match.group(2)
    else:
        raise ValueError(f"not a {kind}; {hint}")
    if number < 0:
        raise ValueError(f"must not be negative; {hint}")
    return number, unit


def parse_duration(value: Any) -> float:
    """Seconds, from `250ms`, `2s`, `5m`, `1h`, `7d`, or a bare number of seconds."""
    number, unit = _split(value, "duration", DURATION_HINT)
    # Case-sensitive: `M` could as well mean months or mega; only the lowercase units exist.
    if unit and unit not in DURATION_UNITS:
        raise ValueError(f"not a duration; {DURATION_HINT}")
    return float(number * DURATION_UNITS.get(unit, Decimal(1)))


def parse_size(value: Any) -> int:
    """Bytes, from `512`, `64KB`, `1MiB`, `2GB`... (SI prefixes are powers of 1000)."""
    number, unit = _split(value, "size", SIZE_HINT)
    unit = unit.lower()  # `64kb` and `64KB` agree; the `i` alone tells powers of 1024 apart
    if unit and unit not in SIZE_UNITS:
        raise ValueError(f"not a size; {SIZE_HINT}")
    size = number * SIZE_UNITS.get(unit, 1)
    if size != size.to_integral_value():
        raise ValueError(f"not a whole number of bytes; {SIZE_HINT}")
    return int(size)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` (900 -> `15m`), for docs and messages."""
    value = Decimal(repr(float(seconds)))
    for unit in ("d", "h", "m", "s", "ms"):
        count = value / DURATION_UNITS[unit]
        if count >= 1 and count == count.to_integral_value():
            return f"{int(count)}{unit}"
    return f"{value.normalize()}s"


def format_size(size: int) -> str:
    """The shortest exact spelling of `size` bytes (1000000 -> `1MB`), for docs and messages."""
    for unit in ("GiB", "GB", "MiB", "MB", "KiB", "KB"):
        factor = SIZE_UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


Duration = Annotated[float, BeforeValidator(parse_duration), TypeLabel("duration")]
"""Seconds as a float; accepts the spellings of `parse_duration`."""

ByteSize = Annotated[int, BeforeValidator(parse_size), TypeLabel("size")]
"""Bytes as an int; accepts the spellings of `parse_size`."""
