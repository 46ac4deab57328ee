"""GraphQL names for what a document calls things: the one documented rule.

GraphQL names are `[_A-Za-z][_0-9A-Za-z]*` and may not start with `__`. A document's name is
kept when it is valid; otherwise every other character becomes `_`, a name starting with a
digit gets a leading `_`, and a leading `__` becomes `_` (`created-at` -> `created_at`,
`2fa` -> `_2fa`, `__meta` -> `_meta`). Enum values also may not be `true`, `false` or `null`:
those get a trailing `_`. When two names of one type come out the same, the later ones get
`_2`, `_3`, ... in document order.
"""

from __future__ import annotations

import re

_INVALID = re.compile(r"[^_0-9A-Za-z]")
RESERVED_ENUM_VALUES = frozenset({"true", "false", "null"})


def graphql_name(text: str) -> str:
    """A valid GraphQL name for `text` (the rule above)."""
    name = _INVALID.sub("_", text) or "_"
    if name[0].isdigit():
        name = "_" + name
    while name.startswith("__"):
        name = name[1:]
    return name or "_"


def enum_value_name(value: object) -> str:
    name = graphql_name(str(value))
    return name + "_" if name in RESERVED_ENUM_VALUES else name


def type_name(text: str) -> str:
    """A type name derived from `text`: valid, its first letter capitalised."""
    name = graphql_name(text)
    return name[0].upper() + name[1:] if name[0].isalpha() else name


class NameSet:
    """Names taken within one type: `take` answers a name not taken yet."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def take(self, wanted: str) -> str:
        name, n = wanted, 1
        while name in self.taken:
            n += 1
            name = f"{wanted}_{n}"
        self.taken.add(name)
        return name
