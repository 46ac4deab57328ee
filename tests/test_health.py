"""`/healthz` (the process lives) and `/readyz` (every required upstream has a usable instance)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest

from bff.config import settings_from_dict
from services import SERVICE_NAMES, RunningServices
from tests.support import AUDIENCE, ISSUER, SECRET, UpstreamCalls, running_gateway


def closed_port_urls(n: int) -> list[str]:
    """`n` distinct loopback URLs nothing listens on (their ports were free a moment ago)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def readyz_of(urls: Mapping[str, Sequence[str]], **users: Any) -> httpx.Response:
    """GET /readyz of a gateway over `urls`; `users` adds keys to the users upstream only."""
    upstreams: dict[str, Any] = {
        name: {"instances": [{"url": u} for u in instance_urls]}
        for name, instance_urls in urls.items()
    }
    upstreams["users"].update(users)
    settings = settings_from_dict(
        {
            "upstreams": upstreams,
            "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwt": {"secret": SECRET}},
        }
    )
    with running_gateway(settings) as url:
        return httpx.get(f"{url}/readyz", timeout=10, trust_env=False)


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10, trust_env=False) as client:
        yield client


def test_healthz_is_ok(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_ignores_a_bad_token(http: httpx.Client) -> None:
    """Probes carry no credentials worth checking: liveness never depends on auth."""
    response = http.get("/healthz", headers={"Authorization": "Bearer garbage"})
    assert response.status_code == 200


def test_readyz_is_ready_when_every_upstream_answers(
    http: httpx.Client, calls: UpstreamCalls
) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["upstreams"]) == set(SERVICE_NAMES)
    for name, state in body["upstreams"].items():
        assert state["usable"] == state["instances"] >= 1, name
    assert body["upstreams"]["users"]["usable"] == 2
    assert calls.total() == 0  # probes hit /health, not the business endpoints


def test_readyz_is_503_naming_a_required_upstream_with_no_usable_instance(
    shop: RunningServices,
) -> None:
    urls = {**shop.urls, "users": closed_port_urls(2)}
    response = readyz_of(urls)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] != "ready"
    assert body["upstreams"]["users"]["usable"] == 0
    assert body["upstreams"]["users"]["required"] is True
    unready = [name for name, s in body["upstreams"].items() if s["required"] and not s["usable"]]
    assert unready == ["users"]


def test_readyz_is_ready_with_one_usable_instance_of_two(shop: RunningServices) -> None:
    urls = {**shop.urls, "users": [shop.url("users"), *closed_port_urls(1)]}
    response = readyz_of(urls)
    assert response.status_code == 200
    assert response.json()["upstreams"]["users"]["usable"] == 1


def test_readyz_ignores_an_unusable_upstream_that_is_not_required(
    shop: RunningServices,
) -> None:
    urls = {**shop.urls, "users": closed_port_urls(1)}
    response = readyz_of(urls, required=False)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["upstreams"]["users"] == {"usable": 0, "instances": 1, "required": False}


def test_readyz_probes_the_configured_health_path(shop: RunningServices) -> None:
    """An instance that does not answer the configured path with 2xx is not usable."""
    response = readyz_of(shop.urls, health_check={"path": "/no-such-health"})
    assert response.status_code == 503
    assert response.json()["upstreams"]["users"]["usable"] == 0
