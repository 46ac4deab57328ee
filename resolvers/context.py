"""`RequestContext`: everything a resolver may use, built once per request.

It is the GraphQL context value (`info.context`): the principal resolved by the auth stage,
clients bound to the caller's identity, the token service (login, refresh, logout), and fresh
dataloaders (a cache never outlives its
request, so one user's data never leaks into another's answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bff.auth import Principal
from bff.auth.issuing import TokenService
from bff.upstream import UpstreamPool
from resolvers.loaders import Loaders
from upstream_clients import Clients


@dataclass(slots=True)
class RequestContext:
    principal: Principal
    clients: Clients
    loaders: Loaders
    request_id: str = ""
    extensions: dict[str, object] = field(default_factory=dict)
    tokens: TokenService | None = None

    @classmethod
    def build(
        cls,
        principal: Principal,
        pools: Mapping[str, UpstreamPool],
        request_id: str = "",
        tokens: TokenService | None = None,
    ) -> RequestContext:
        clients = Clients.bind(pools, principal.identity_headers())
        return cls(principal, clients, Loaders(clients), request_id, tokens=tokens)
