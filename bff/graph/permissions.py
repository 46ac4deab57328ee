"""`requires(...)`: a requirement from `bff.auth.policy` declared on a strawberry field.

Requirements that need no owner are checked before the resolver runs, so a refused field
costs no upstream call. `OwnerOr` needs to know whose resource it is: either from the parent
object (`owner=` reads it from the source, e.g. `User.email`), or from the loaded value
(`owner_of_result=`, e.g. `order(id)`), in which case authentication is checked first and
ownership after loading.

`before` and `after` take the principal and the parent (or the loaded value), so the
execution fast path runs the very same checks per parent without building strawberry's `Info`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info

from bff.auth import Authenticated, Principal, Requirement

OwnerFn = Callable[[Any], int | None]

_AUTHENTICATED = Authenticated()


class Requires(FieldExtension):
    def __init__(
        self,
        requirement: Requirement,
        *,
        owner: OwnerFn | None = None,
        owner_of_result: OwnerFn | None = None,
    ) -> None:
        self.requirement = requirement
        self.owner = owner
        self.owner_of_result = owner_of_result

    @property
    def checks_result(self) -> bool:
        """Whether `after` looks at the loaded value (otherwise it hands it back as it is)."""
        return self.owner_of_result is not None

    def before(self, principal: Principal, source: Any) -> None:
        """Raise when `principal` may not read this field of `source`."""
        if self.owner_of_result is not None:
            _AUTHENTICATED.check(principal)
        else:
            self.requirement.check(principal, self.owner(source) if self.owner else None)

    def after(self, principal: Principal, result: Any) -> Any:
        """`result`, or raise when `principal` may not see it."""
        if self.owner_of_result is not None and result is not None:
            self.requirement.check(principal, self.owner_of_result(result))
        return result

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        principal = info.context.principal
        self.before(principal, source)
        return self.after(principal, next_(source, info, **kwargs))

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        principal = info.context.principal
        self.before(principal, source)
        return self.after(principal, await next_(source, info, **kwargs))


def requires(
    requirement: Requirement,
    *,
    owner: OwnerFn | None = None,
    owner_of_result: OwnerFn | None = None,
) -> list[FieldExtension]:
    """The `extensions=` list of a field protected by `requirement`."""
    return [Requires(requirement, owner=owner, owner_of_result=owner_of_result)]
