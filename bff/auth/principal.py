"""Who is calling: resolved once per request, read by every permission check after it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        return self.sub is not None

    @property
    def user_id(self) -> int | None:
        """The subject as a user id of the shop, when it is one."""
        if self.sub is not None and self.sub.isdigit():
            return int(self.sub)
        return None

    def has_scopes(self, scopes: frozenset[str]) -> bool:
        return scopes <= self.scopes

    def identity_headers(self) -> dict[str, str]:
        """What upstreams learn of the caller (never the client's own credentials)."""
        if self.sub is None:
            return {}
        return {"X-User-Id": self.sub, "X-User-Scopes": " ".join(sorted(self.scopes))}


ANONYMOUS = Principal()
