"""`RequestContext`: everything a resolver may use, built once per request by the engine.

It is the GraphQL context value (`info.context`): the principal resolved by the auth stage,
the graph's clients bound to the caller's identity and its dataloaders (both made lazily,
`bff.graph.services`), the token service (login, refresh, logout), the request id, and the
pools themselves for the engine's own fields and generated sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bff.auth import Principal
from bff.auth.issuing import TokenService
from bff.upstream import UpstreamPool

C = TypeVar("C")
L = TypeVar("L")


@dataclass(slots=True)
class RequestContext(Generic[C, L]):
    principal: Principal
    clients: C
    loaders: L
    pools: Mapping[str, UpstreamPool]
    request_id: str = ""
    tokens: TokenService | None = None
    client_address: str = ""  # the client as the rate limits see it (trusted proxies applied)
    extensions: dict[str, object] = field(default_factory=dict)


AnyContext = RequestContext[Any, Any]
