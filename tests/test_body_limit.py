"""`server.max_body`: oversized bodies get 413 without being read whole, declared or chunked."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from services import RunningServices
from tests.support import gateway_settings, running_gateway

LIMIT = 2000
QUERY = b'{"query": "{ __typename }"}'


@pytest.fixture(scope="module")
def small(shop: RunningServices) -> Iterator[str]:
    with running_gateway(gateway_settings(shop.urls, server={"max_body": LIMIT})) as url:
        yield url


def padded(size: int) -> bytes:
    """A valid GraphQL request body of exactly `size` bytes."""
    padding = size - len(QUERY) - len(', "pad": ""')
    return QUERY[:-1] + b', "pad": "' + b"x" * padding + b'"}'


def test_a_body_at_the_limit_is_served(small: str) -> None:
    body = padded(LIMIT)
    assert len(body) == LIMIT
    response = httpx.post(
        f"{small}/graphql", content=body, headers={"Content-Type": "application/json"},
        trust_env=False,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"__typename": "Query"}


def test_a_declared_length_over_the_limit_is_refused(small: str) -> None:
    response = httpx.post(
        f"{small}/graphql", content=padded(LIMIT + 1),
        headers={"Content-Type": "application/json"}, trust_env=False,
    )  # fmt: skip
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert response.headers["connection"] == "close"


def test_a_chunked_body_over_the_limit_is_refused(small: str) -> None:
    def chunks() -> Iterator[bytes]:
        body = padded(LIMIT * 3)
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    response = httpx.post(
        f"{small}/graphql", content=chunks(), headers={"Content-Type": "application/json"},
        trust_env=False,
    )  # fmt: skip
    assert response.status_code == 413


def test_a_chunked_body_within_the_limit_is_served(small: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield QUERY[:10]
        yield QUERY[10:]

    response = httpx.post(
        f"{small}/graphql", content=chunks(), headers={"Content-Type": "application/json"},
        trust_env=False,
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["data"] == {"__typename": "Query"}


def test_the_answer_comes_before_an_oversized_body_is_sent(small: str) -> None:
    """Declare 100 MB, send none of it: the gateway answers 413 at once (it reads nothing)."""
    parts = urlparse(small)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_every_route_has_the_limit(small: str) -> None:
    response = httpx.post(f"{small}/healthz", content=b"x" * (LIMIT + 1), trust_env=False)
    assert response.status_code == 413
