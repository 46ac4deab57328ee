"""Access requirements, declared on GraphQL fields and passthrough routes alike.

A requirement is a pure decision over (principal, owner): it raises `Unauthenticated` or
`Forbidden` and knows nothing of GraphQL or HTTP. `owner` is the user id that owns the
resource, when the requirement needs one (`needs_owner`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from bff.auth.principal import Principal
from bff.errors import Forbidden, Unauthenticated


class Requirement(ABC):
    needs_owner: bool = False

    @abstractmethod
    def check(self, principal: Principal, owner: int | None = None) -> None:
        """Return when `principal` may proceed; raise otherwise."""


class Public(Requirement):
    def check(self, principal: Principal, owner: int | None = None) -> None:
        return None


class Authenticated(Requirement):
    def check(self, principal: Principal, owner: int | None = None) -> None:
        if not principal.is_authenticated:
            raise Unauthenticated()


class Scopes(Authenticated):
    def __init__(self, *scopes: str) -> None:
        self.scopes = frozenset(scopes)

    def check(self, principal: Principal, owner: int | None = None) -> None:
        super().check(principal)
        if not principal.has_scopes(self.scopes):
            missing = " ".join(sorted(self.scopes - principal.scopes))
            raise Forbidden(f"Missing scope: {missing}")


class OwnerOr(Scopes):
    """The owner of the resource, or anyone holding the scopes."""

    needs_owner = True

    def check(self, principal: Principal, owner: int | None = None) -> None:
        Authenticated.check(self, principal)
        if owner is not None and principal.user_id == owner:
            return
        if not principal.has_scopes(self.scopes):
            raise Forbidden("Only the owner or a holder of " + " ".join(sorted(self.scopes)))
