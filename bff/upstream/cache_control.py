"""`Freshness`: what an upstream answer's `Cache-Control` (RFC 9111) allows, read once.

The header policy (what the GraphQL response may say) and the response cache (how long the
gateway may keep an answer) both read it. An answer without `Cache-Control` may be stored
only when its upstream sets `cache.ttl`; `no-cache` is read as `no-store` (the gateway never
serves an answer it would have to revalidate every time from its own store without asking).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

NO_STORE = "no-store"


@dataclass(frozen=True, slots=True)
class Freshness:
    """`max_age` in seconds for the client, `shared_max_age` for the gateway's own cache
    (`s-maxage` wins for a shared cache, RFC 9111 5.2.2.10, unless the answer is `private`:
    then the gateway keeps it per principal, as a private cache would); `None`: not to be
    stored."""

    max_age: int | None
    shared_max_age: int | None
    private: bool = False

    @property
    def storable(self) -> bool:
        return self.max_age is not None


NOT_STORABLE = Freshness(None, None)


@lru_cache(maxsize=1024)
def directives(value: str) -> Mapping[str, str]:
    """`max-age=60, private` as `{"max-age": "60", "private": ""}` (names in lower case).

    Read-only and remembered per value: an upstream sends the same few values on every
    answer, and a cache hit would otherwise parse its stored header again each time."""
    found: dict[str, str] = {}
    for part in value.split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            found.setdefault(name.lower(), argument.strip().strip('"'))
    return MappingProxyType(found)


def _seconds(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


def freshness(headers: Mapping[str, str], ttl: float | None = None) -> Freshness:
    """How fresh an answer with `headers` still is (its `Age` taken off); `ttl` stands for a
    missing `Cache-Control` or one that gives no lifetime (the upstream's `cache.ttl`)."""
    return _freshness(headers.get("cache-control"), headers.get("age"), ttl)


@lru_cache(maxsize=4096)
def _freshness(value: str | None, age_value: str | None, ttl: float | None) -> Freshness:
    """Remembered per field values: an upstream sends the same few, and a cached answer's
    `Age` takes one value a second."""
    found = directives(value) if value is not None else {}
    if NO_STORE in found or "no-cache" in found:
        return NOT_STORABLE
    max_age = _seconds(found.get("max-age"))
    shared = _seconds(found.get("s-maxage"))
    if max_age is None and shared is None:
        if ttl is None:
            return NOT_STORABLE
        max_age = int(ttl)
    private = "private" in found
    own = max_age if max_age is not None else (shared or 0)
    kept = shared if shared is not None and not private else own
    age = _seconds(age_value) or 0
    return Freshness(max(0, own - age), max(0, kept - age), private)


# `freshness` from the `Cache-Control` and `Age` values, for a caller that holds them (a
# call of `freshness` fewer per answer: the pool reads them from the decoded fields).
freshness_of = _freshness


def stale_window(headers: Mapping[str, str], lifetime: float) -> float:
    """How long past its freshness a cached answer may be served while it is revalidated:
    its `stale-while-revalidate`, else as long again as it was fresh; 0 without a validator
    (`ETag` or `Last-Modified`) to revalidate it with."""
    if "etag" not in headers and "last-modified" not in headers:
        return 0.0
    value = headers.get("cache-control")
    given = _seconds(directives(value).get("stale-while-revalidate")) if value else None
    return float(given) if given is not None else lifetime
