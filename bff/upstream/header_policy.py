"""`UsedAnswers`: the upstream answers one client request used, and what they let it say.

The GraphQL route calls `collect_answers()` before an execution (`used_answers()` is the
scoped form); every `UpstreamPool.request`
made inside it (the dataloader batches are tasks of the request, so they inherit the context
variable) records its answer here. The route then asks `response_headers`:

- `Cache-Control`: the most restrictive of the answers' (`no-store` wins, else `private`,
  else the smallest `max-age`); an answer without one counts as `no-store` unless its upstream
  sets `cache.ttl`; a response with errors, to a mutation, or that used no answer is
  `no-store`.
- the fields each upstream's `response_headers` names (default none): every `Set-Cookie` of
  every call kept, other fields once (the first answer's value).

A call shared with an identical one in flight (`bff.upstream.sharing`) that this request did
not start passes no `Set-Cookie`: a cookie is meant for the one caller who caused it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from bff.upstream.cache_control import NO_STORE, NOT_STORABLE, Freshness, freshness

SET_COOKIE = "set-cookie"


class UsedAnswers:
    """What the answers used by one request allow its response to carry."""

    __slots__ = (
        "cookies",
        "fields",
        "max_age",
        "mutation",
        "no_store",
        "private",
        "shared_max_age",
        "used",
    )

    def __init__(self, *, mutation: bool = False) -> None:
        self.mutation = mutation  # its upstream calls are never shared nor served from cache
        self.used = 0
        self.no_store = False
        self.private = False
        self.max_age: int | None = None
        self.shared_max_age: int | None = None  # the gateway's: what the item cache keeps
        self.cookies = False  # an answer set a cookie: its items are never kept
        self.fields: list[tuple[str, str]] = []

    def record(
        self,
        headers: Mapping[str, str],
        fresh: Freshness,
        passed: frozenset[str] = frozenset(),
        *,
        cookies: bool = True,
        values: Mapping[str, list[str]] | None = None,
    ) -> None:
        """One answer used: its freshness for the client, and the fields `passed` names
        (lower case) taken from `values` (every value of each field, by lower-case name)."""
        self.used += 1
        self.cookies = self.cookies or SET_COOKIE in headers
        self._fresh(fresh)
        if not passed or values is None:
            return
        known = {name.lower() for name, _ in self.fields}
        for name in sorted(passed):  # a stable order, whatever the set's
            if name == SET_COOKIE:
                if cookies:
                    self.fields += [("set-cookie", v) for v in values.get(name, ())]
            elif name not in known and values.get(name):
                self.fields.append((name, values[name][0]))

    def _fresh(self, fresh: Freshness) -> None:
        if fresh.max_age is None or fresh.shared_max_age is None:
            self.no_store = True
            return
        self.private = self.private or fresh.private
        if self.max_age is None or fresh.max_age < self.max_age:
            self.max_age = fresh.max_age
        if self.shared_max_age is None or fresh.shared_max_age < self.shared_max_age:
            self.shared_max_age = fresh.shared_max_age

    def reused(self, fresh: Freshness) -> None:
        """An item kept from an earlier answer (the item cache) was used, this fresh."""
        self.used += 1
        self._fresh(fresh)

    def merge(self, other: UsedAnswers) -> None:
        """Take in the answers `other` recorded (a batch's, recorded apart first)."""
        self.used += other.used
        self.cookies = self.cookies or other.cookies
        if other.no_store:
            self.no_store = True
        elif other.max_age is not None and other.shared_max_age is not None:
            self._fresh(Freshness(other.max_age, other.shared_max_age, other.private))
        known = {name for name, _ in self.fields}
        for name, value in other.fields:
            if name == SET_COOKIE or name not in known:
                self.fields.append((name, value))

    def freshness(self) -> Freshness:
        """How long what was built from these answers may be kept by the gateway."""
        if self.no_store or self.cookies or not self.used or self.max_age is None:
            return NOT_STORABLE
        return Freshness(self.max_age, self.shared_max_age, self.private)

    def cache_control(self, *, errors: bool = False) -> str:
        if errors or self.mutation or self.no_store or not self.used or self.max_age is None:
            return NO_STORE
        return f"private, max-age={self.max_age}" if self.private else f"max-age={self.max_age}"

    def response_headers(self, *, errors: bool = False) -> list[tuple[str, str]]:
        """`Cache-Control` first, then the passed fields, in the order they were answered."""
        return [("cache-control", self.cache_control(errors=errors)), *self.fields]


_CURRENT: ContextVar[UsedAnswers | None] = ContextVar("bff_used_answers", default=None)

current_answers = _CURRENT.get


def collect_answers(*, mutation: bool = False) -> UsedAnswers:
    """Record the answers of the upstream calls made from here on in the calling task's
    context (one client request, and the tasks it starts after this call)."""
    answers = UsedAnswers(mutation=mutation)
    _CURRENT.set(answers)
    return answers


@contextmanager
def used_answers(*, mutation: bool = False) -> Iterator[UsedAnswers]:
    """Record the answers of the upstream calls made inside (and in tasks started inside)."""
    answers = UsedAnswers(mutation=mutation)
    token = _CURRENT.set(answers)
    try:
        yield answers
    finally:
        _CURRENT.reset(token)


__all__ = [
    "SET_COOKIE",
    "UsedAnswers",
    "collect_answers",
    "current_answers",
    "freshness",
    "used_answers",
]
