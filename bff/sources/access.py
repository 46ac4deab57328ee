"""`sources[].auth` as a field check: the same requirements routes use (`bff.auth`)."""

from __future__ import annotations

from typing import Any

from bff.auth import Authenticated, Principal, Public, Requirement, Scopes
from bff.errors import BffError


def requirement_of(auth: Any) -> Requirement:
    """`public`, `authenticated` or `{scopes: [...]}` (a `RouteScopes`) as a requirement."""
    if auth == "public":
        return Public()
    if auth == "authenticated":
        return Authenticated()
    return Scopes(*auth.scopes)


class SourceAccess:
    """Checked when a source's field runs, before its upstream call, so a refused field
    costs none.

    It needs no parent (no owner), so a field's batch form checks it once for all the
    parents of a level (`refusal`), where a `checks` entry would run once per parent.
    """

    def __init__(self, requirement: Requirement) -> None:
        self.requirement = requirement
        self.public = isinstance(requirement, Public)

    def refusal(self, principal: Principal) -> BffError | None:
        """The error refusing `principal` (`UNAUTHENTICATED`, `FORBIDDEN`), or `None`."""
        if self.public:
            return None
        try:
            self.requirement.check(principal)
        except BffError as error:
            return error
        return None
