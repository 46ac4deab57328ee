"""`Headers`: response fields as received, read case-insensitively when someone asks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar, overload

T = TypeVar("T")


class Headers(Mapping[str, str]):
    """Response headers, read case-insensitively; repeated fields are joined with ", ".

    The raw `(name, value)` byte pairs are kept as received and decoded only on first access:
    most callers read the status and body and never look at a header.
    """

    __slots__ = ("_map", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._map: dict[str, str] | None = None

    def decoded(self) -> dict[str, str]:
        """The fields by lower-case name, decoded once: a plain dict, read in C by callers
        that look up several fields of every answer (the pool's header policy)."""
        if self._map is None:
            fields: dict[str, str] = {}
            for name, value in self.raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                fields[key] = f"{fields[key]}, {text}" if key in fields else text
            self._map = fields
        return self._map

    def __getitem__(self, name: str) -> str:
        return self.decoded()[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, /, default: str | T) -> str | T: ...

    def get(self, name: str, /, default: object = None) -> object:
        """Mapping's `get` in one call (the mixin's goes through `__getitem__` and a
        KeyError for every field that is not there)."""
        return self.decoded().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.decoded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def get_list(self, name: str) -> list[str]:
        """Every value of a repeated field, unjoined (`set-cookie` cannot be joined)."""
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.raw if n.lower() == wanted]

    def __repr__(self) -> str:
        return f"Headers({list(self.decoded().items())!r})"
