"""Session-wide real servers: the six sample services and a gateway in front of them.

Tests that change data or need faults start their own (`tests.support.running_shop`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services import RunningServices, ServiceSpec
from tests.support import (
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    running_shop,
)


@pytest.fixture(scope="session")
def shop() -> Iterator[RunningServices]:
    """Every service, users with two instances (the pool balances across them)."""
    with running_shop(ServiceSpec("users", instances=2)) as running:
        yield running


@pytest.fixture(scope="session")
def gateway_url(shop: RunningServices) -> Iterator[str]:
    with running_gateway(gateway_settings(shop.urls)) as url:
        yield url


@pytest.fixture(scope="session")
def gql(gateway_url: str) -> Iterator[GraphQLClient]:
    client = GraphQLClient(gateway_url)
    yield client
    client.close()


@pytest.fixture
def calls(shop: RunningServices) -> Iterator[UpstreamCalls]:
    """Upstream request counts, reset before the test."""
    counter = UpstreamCalls(shop)
    counter.reset()
    yield counter
    counter.close()
