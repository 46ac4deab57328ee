"""Passthrough routes as configured: name, upstream pool, methods, who may call, and where
on the upstream a client's path lands.

    /api/{name}{tail}  ->  {prefix}{normalise_path(tail)}

    route option             prefix           /api/catalog/products/1 reaches
    strip_prefix (default)   ""               /products/1
    strip_prefix: false      "/api/{name}"    /api/catalog/products/1
    rewrite: /v2/catalog     "/v2/catalog"    /v2/catalog/products/1

The tail is normalised before it is joined (canonical, or refused as InvalidPath), and the
prefix is canonical by construction (the config allows only plain segments), so the joined
path has no dot, empty or encoded-slash segment for any parser to resolve: whatever a client
writes, the upstream sees a path under the prefix. The query string is not the route's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bff.auth.policy import Authenticated, Public, Requirement, Scopes
from bff.upstream import UpstreamPool
from bff.upstream.paths import InvalidPath, normalise_path

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
    prefix: str = ""  # put before the client's normalised tail: "", "/api/{name}" or a rewrite
    response_headers: frozenset[str] = frozenset()  # withheld fields this route passes (lower)

    def upstream_path(self, tail: str) -> str:
        """The upstream's path for a client's `/api/{name}{tail}`.

        `tail` is the rest of the path as received (percent-encoded, no query): empty, or
        starting with `/`. Empty means the client addressed the route itself, which reaches the
        prefix as it is (`/v2/catalog`, not `/v2/catalog/`), or `/`. Raises InvalidPath when
        the tail is ambiguous or could climb out of the prefix (answered with 400): besides
        what `normalise_path` refuses, a `;` in any spelling, since servlet-style upstreams
        read `..;` as `..` and `/a;x=1` as `/a` (path parameters).
        """
        if not tail:
            return self.prefix or "/"
        path = normalise_path(tail)
        if ";" in path or "%3B" in path:  # normalised: every escape is in upper case
            raise InvalidPath("the path has a ';' parameter in a segment")
        return self.prefix + path if self.prefix else path

    @property
    def allow(self) -> str:
        """The `Allow` header of a 405: the route's methods, in a stable order."""
        return ", ".join(sorted(self.methods))


def routes_from_settings(
    settings: Settings, pools: Mapping[str, UpstreamPool], mount: str = "/api"
) -> dict[str, PassRoute]:
    """Every configured route by name (the config already checked names, upstreams and
    rewrite prefixes); `mount` is where the passthrough is served, which `strip_prefix: false`
    keeps in the path."""
    routes = {}
    for route in settings.routes:
        if not route.strip_prefix:
            prefix = f"{mount}/{route.name}"
        else:
            prefix = (route.rewrite or "").rstrip("/")  # rewrite "/" is no prefix at all
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
            prefix,
            frozenset(route.response_headers),
        )
    return routes
