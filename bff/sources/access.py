"""`sources[].auth` as a field check: the same requirements routes use (`bff.auth`)."""

from __future__ import annotations

from typing import Any

from bff.auth import Authenticated, Principal, Public, Requirement, Scopes


def requirement_of(auth: Any) -> Requirement:
    """`public`, `authenticated` or `{scopes: [...]}` (a `RouteScopes`) as a requirement."""
    if auth == "public":
        return Public()
    if auth == "authenticated":
        return Authenticated()
    return Scopes(*auth.scopes)


class SourceAccess:
    """Checked before a source's field runs, so a refused field costs no upstream call."""

    def __init__(self, requirement: Requirement) -> None:
        self.requirement = requirement

    def before(self, principal: Principal, source: Any) -> None:
        self.requirement.check(principal)

    def after(self, principal: Principal, result: Any) -> Any:
        return result

    @property
    def checks(self) -> tuple[SourceAccess, ...]:
        """The `checks` of the source's fields: none for a public source (nothing to run per
        parent)."""
        return () if isinstance(self.requirement, Public) else (self,)
