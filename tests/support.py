"""What gateway tests share: a real gateway over real sample services, and a GraphQL client.

Everything runs on loopback ports picked by the kernel; nothing stands in for HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from bff.app import create_app
from bff.auth import TokenSigner
from bff.config import Settings, settings_from_dict
from bff.graph import Graph
from bff.graph.token_fields import token_graph
from bff.serving import BackgroundServer
from schema import graph as shop_graph
from services import SERVICE_NAMES, RunningServices, ServiceSpec

SECRET = "test-secret-0123456789-abcdefghij"
ISSUER = "bff"
AUDIENCE = "bff"
ALL_SCOPES = ("orders:read", "users:read:email")

# The shop graph as a gateway with an auth upstream serves it (the engine's token mutations in).
SHOP = Graph.combine([shop_graph, token_graph()])
SHOP_SCHEMA = SHOP.schema

DASHBOARD = """query Dashboard($first: Int) { orders(first: $first) { nodes { id status total
  user { id name }
  items { quantity product { id name price stock averageRating } } } } }"""


def gateway_settings(
    urls: Mapping[str, Sequence[str]],
    upstream_overrides: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Settings:
    """Settings for a gateway over `urls`; `upstream_overrides` merge into every upstream.

    Rate limits are off unless `rate_limits` is given: the suite sends many requests from one
    address, and only the rate-limit tests are about budgets.
    """
    upstreams = {
        name: {"instances": [{"url": u} for u in instance_urls], **(upstream_overrides or {})}
        for name, instance_urls in urls.items()
    }
    data: dict[str, Any] = {
        "upstreams": upstreams,
        "auth": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwt": {"algorithm": "HS256", "secret": SECRET},
        },
        "rate_limits": {"enabled": False},
        **extra,
    }
    return settings_from_dict(data)


@contextmanager
def running_gateway(settings: Settings) -> Iterator[str]:
    """Serve a gateway built from `settings`; yields its base URL."""
    with BackgroundServer(create_app(settings)) as server:
        yield server.url


@contextmanager
def running_shop(*specs: ServiceSpec) -> Iterator[RunningServices]:
    """All six services; `specs` replace the default spec of the services they name."""
    chosen = {spec.name: spec for spec in specs}
    with RunningServices([chosen.get(name, ServiceSpec(name)) for name in SERVICE_NAMES]) as shop:
        yield shop


def sign(
    sub: str = "1",
    scopes: Sequence[str] = ALL_SCOPES,
    *,
    secret: str = SECRET,
    algorithm: str = "HS256",
    audience: str = AUDIENCE,
    issuer: str = ISSUER,
    ttl: float = 300,
    now: float | None = None,
) -> str:
    return TokenSigner(algorithm, secret, issuer, audience).sign(sub, scopes, ttl=ttl, now=now)


class GraphQLClient:
    """One way for every test to talk GraphQL to a gateway."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=10, trust_env=False)

    def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        if operation_name is not None:
            body["operationName"] = operation_name
        send = {"Accept": "application/graphql-response+json"}
        if token is not None:
            send["Authorization"] = f"Bearer {token}"
        send.update(headers or {})
        return self.http.post("/graphql", json=body, headers=send)

    def execute(
        self, query: str, variables: Mapping[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """The response body of a request that must be answered 200."""
        response = self.post(query, variables, **kw)
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, query: str, variables: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        """`data` of a response that must have no errors."""
        body = self.execute(query, variables, **kw)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def close(self) -> None:
        self.http.close()


class UpstreamCalls:
    """Requests counted at the services themselves (all instances added up)."""

    def __init__(self, shop: RunningServices) -> None:
        self.shop = shop
        self.http = httpx.Client(timeout=5, trust_env=False)

    def reset(self) -> None:
        for urls in self.shop.urls.values():
            for url in urls:
                self.http.post(f"{url}/_stats/reset").raise_for_status()

    def by_service(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for name, urls in self.shop.urls.items():
            for url in urls:
                counts[name] += self.http.get(f"{url}/_stats").json()["requests"]
        return +counts

    def by_path(self, service: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        for url in self.shop.urls[service]:
            counts.update(self.http.get(f"{url}/_stats").json()["by_path"])
        return counts

    def per_instance(self, service: str) -> list[int]:
        return [self.http.get(f"{u}/_stats").json()["requests"] for u in self.shop.urls[service]]

    def last_headers(self, service: str) -> dict[str, str]:
        """Identity headers of the latest request any instance of `service` saw."""
        seen: dict[str, str] = {}
        for url in self.shop.urls[service]:
            seen.update(self.http.get(f"{url}/_stats").json()["last_headers"])
        return seen

    def total(self) -> int:
        return sum(self.by_service().values())

    def close(self) -> None:
        self.http.close()
