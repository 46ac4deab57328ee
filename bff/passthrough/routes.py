"""Passthrough routes as configured: name, upstream pool, methods, who may call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bff.auth.policy import Authenticated, Public, Requirement, Scopes
from bff.upstream import UpstreamPool

if TYPE_CHECKING:
    from bff.config import Settings


@dataclass(frozen=True, slots=True)
class PassRoute:
    name: str
    pool: UpstreamPool
    methods: frozenset[str]
    requirement: Requirement
    forward_authorization: bool = False
    timeout: float | None = None  # None: the pool's total timeout

    @property
    def allow(self) -> str:
        """The `Allow` header of a 405: the route's methods, in a stable order."""
        return ", ".join(sorted(self.methods))


def routes_from_settings(
    settings: Settings, pools: Mapping[str, UpstreamPool]
) -> dict[str, PassRoute]:
    """Every configured route by name (the config already checked names and upstreams)."""
    routes = {}
    for route in settings.routes:
        auth = route.auth
        requirement: Requirement
        if auth == "public":
            requirement = Public()
        elif auth == "authenticated":
            requirement = Authenticated()
        else:
            requirement = Scopes(*auth.scopes)
        methods = set(route.methods)
        if "GET" in methods:
            methods.add("HEAD")  # a GET route answers HEAD as well (RFC 9110 9.3.2)
        routes[route.name] = PassRoute(
            route.name,
            pools[route.upstream],
            frozenset(methods),
            requirement,
            route.forward_authorization,
            route.timeout,
        )
    return routes
