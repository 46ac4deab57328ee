"""`requires(...)`: a requirement from `bff.auth.policy` declared on a strawberry field.

Requirements that need no owner are checked before the resolver runs, so a refused field
costs no upstream call. `OwnerOr` needs to know whose resource it is: either from the parent
object (`owner=` reads it from the source, e.g. `User.email`), or from the loaded value
(`owner_of_result=`, e.g. `order(id)`), in which case authentication is checked first and
ownership after loading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info

from bff.auth import Authenticated, Requirement

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

    def before(self, source: Any, info: Info) -> None:
        principal = info.context.principal
        if self.owner_of_result is not None:
            _AUTHENTICATED.check(principal)
        else:
            self.requirement.check(principal, self.owner(source) if self.owner else None)

    def after(self, result: Any, info: Info) -> Any:
        if self.owner_of_result is not None and result is not None:
            self.requirement.check(info.context.principal, self.owner_of_result(result))
        return result

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        self.before(source, info)
        return self.after(next_(source, info, **kwargs), info)

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        self.before(source, info)
        return self.after(await next_(source, info, **kwargs), info)


def requires(
    requirement: Requirement,
    *,
    owner: OwnerFn | None = None,
    owner_of_result: OwnerFn | None = None,
) -> list[FieldExtension]:
    """The `extensions=` list of a field protected by `requirement`."""
    return [Requires(requirement, owner=owner, owner_of_result=owner_of_result)]
