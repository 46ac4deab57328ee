"""What the token tests share: a unique Redis key prefix per test, gateways with auth settings,
and a closed port to stand for a Redis that is down."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import redis

from bff.config import Settings, settings_from_dict
from tests.support import AUDIENCE, ISSUER, SECRET

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED_SERVER = os.environ.get("MEMCACHED_SERVER", "127.0.0.1:11211")  # scripts/test sets it


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = f"bfftest:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_keys(prefix: str) -> list[str]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return sorted(client.scan_iter(match=prefix + "*", count=500))
    finally:
        client.close()


def closed_port_url() -> str:
    """A Redis URL nothing listens on (the port was just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


# The suite logs in from one address, many times a minute, often under the default key prefix:
# the login throttle's default budgets are tested in test_login_throttle.py, not met by accident.
ROOMY_LOGIN = {"login": {"per_username": {"requests": 10_000}, "per_address": {"requests": 10_000}}}


def auth_gateway_settings(
    urls: Mapping[str, Sequence[str]],
    *,
    redis_url: str = REDIS_URL,
    prefix: str = "bff:",
    rate_limits: Mapping[str, Any] | None = None,
    **auth: Any,
) -> Settings:
    """Gateway settings over `urls` with the test HS256 key and `auth` keys on top; the login
    throttle roomy unless `rate_limits` says otherwise."""
    data: dict[str, Any] = {
        "upstreams": {
            name: {"instances": [{"url": u} for u in instance_urls]}
            for name, instance_urls in urls.items()
        },
        "auth": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwt": {"algorithm": "HS256", "secret": SECRET},
            **auth,
        },
        "redis": {"url": redis_url, "key_prefix": prefix},
        "rate_limits": dict(ROOMY_LOGIN if rate_limits is None else rate_limits),
    }
    return settings_from_dict(data)
