"""Per-client rate limits: GCRA verdicts with an injected clock, who counts as a client, the
429 answers, two gateway processes sharing one budget in Redis, and Redis going away."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from bff.auth import ANONYMOUS, Principal
from bff.config import RateLimitsConfig
from bff.limits import (
    ClientIdentifier,
    MemoryRateStore,
    RateLimiter,
    RedisRateStore,
    Rule,
    StoreUnavailable,
    decide,
)
from bff.limits.gcra import Verdict
from bff.shared_state import SharedState
from services import RunningServices
from tests.support import GraphQLClient, gateway_settings, running_gateway, sign
from tests.tcp_proxy import TcpProxy
from tests.test_cli import running_bff, valid_config, wait_for, write_config

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SECOND = 1_000_000  # microseconds


# --- GCRA, pure -----------------------------------------------------------------------------


def test_a_burst_of_the_limit_passes_then_the_steady_rate() -> None:
    rule = Rule(3, 3.0)  # one request a second, bursts of 3
    tat = None
    for _ in range(3):
        allowed, tat, wait = decide(tat, 0, rule.interval_us, rule.period_us)
        assert allowed and wait == 0
    allowed, unchanged, wait = decide(tat, 0, rule.interval_us, rule.period_us)
    assert not allowed
    assert wait == SECOND and unchanged == tat  # a refused request uses no budget
    allowed, tat, _ = decide(tat, SECOND // 2, rule.interval_us, rule.period_us)
    assert not allowed
    allowed, tat, _ = decide(tat, SECOND, rule.interval_us, rule.period_us)
    assert allowed
    allowed, _, wait = decide(tat, SECOND, rule.interval_us, rule.period_us)
    assert not allowed and wait == SECOND


def test_an_idle_client_gets_its_whole_budget_back() -> None:
    rule = Rule(2, 10.0)
    tat = None
    for _ in range(2):
        _, tat, _ = decide(tat, 0, rule.interval_us, rule.period_us)
    assert not decide(tat, 0, rule.interval_us, rule.period_us)[0]
    later = 100 * SECOND
    passed = 0
    for _ in range(3):
        allowed, tat, _ = decide(tat, later, rule.interval_us, rule.period_us)
        passed += allowed
    assert passed == 2


def test_verdicts_count_remaining_and_round_retry_after_up() -> None:
    rule = Rule(10, 10.0)
    assert Verdict.of(rule, True, 0, 3 * SECOND).remaining == 7
    refused = Verdict.of(rule, False, 200_000, 10 * SECOND)
    assert refused.remaining == 0
    assert refused.retry_after_header == "1"
    assert Verdict.of(rule, False, 1_000_001, 10 * SECOND).retry_after_header == "2"
    assert Verdict.of(rule, False, 2 * SECOND, 10 * SECOND).retry_after_header == "2"


def test_the_memory_store_follows_its_clock_and_forgets_idle_clients() -> None:
    now = [0]
    store = MemoryRateStore(clock=lambda: now[0])
    rule = Rule(2, 2.0)
    assert [store.hit_now("a", rule)[0] for _ in range(3)] == [True, True, False]
    assert store.hit_now("b", rule)[0]  # budgets are per client
    now[0] = SECOND
    assert store.hit_now("a", rule)[0]
    now[0] = 10 * SECOND
    store.sweep(now[0])
    assert store.tats == {}


def test_a_flood_of_live_clients_is_swept_rarely(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client still within its period: a sweep frees nothing, so the next one waits
    until the store has doubled (not one full sweep per new client)."""
    monkeypatch.setattr("bff.limits.stores.MEMORY_SWEEP_AT", 4)
    store = MemoryRateStore(clock=lambda: 0)
    sweeps = []
    sweep = store.sweep
    monkeypatch.setattr(store, "sweep", lambda now: (sweeps.append(now), sweep(now)))
    rule = Rule(2, 60.0)
    for n in range(64):
        assert store.hit_now(f"ip:{n}", rule)[0]
    assert len(store.tats) == 64
    assert len(sweeps) == 4  # at 4, 8, 16 and 32 entries


def test_a_client_gets_its_own_budget_else_its_best_scope_else_the_default() -> None:
    config = RateLimitsConfig.model_validate(
        {
            "default": {"requests": 10, "per": "1m"},
            "clients": {"user:7": {"requests": 1, "per": "1m"}},
            "scopes": {
                "partner": {"requests": 100, "per": "1m"},
                "bulk": {"requests": 1000, "per": "1h"},  # 16.7/min: partner's is better
            },
        }
    )
    limiter = RateLimiter(MemoryRateStore(), config)
    assert limiter.rule_for("user:7", {"partner"}) == Rule(1, 60.0)
    assert limiter.rule_for("user:8", {"partner", "bulk"}) == Rule(100, 60.0)
    assert limiter.rule_for("user:8", {"bulk"}) == Rule(1000, 3600.0)
    assert limiter.rule_for("ip:10.0.0.1") == Rule(10, 60.0)


# --- who the client is ----------------------------------------------------------------------


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, object]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    return {"type": "http", "client": (peer, 50000), "headers": raw}


def test_the_token_subject_wins_then_a_known_api_key_then_the_ip() -> None:
    identify = ClientIdentifier(api_keys={"reports": SecretStr("k-123")}).identify
    user = Principal(sub="42")
    assert identify(scope("10.0.0.9", ("X-API-Key", "k-123")), user) == "user:42"
    assert identify(scope("10.0.0.9", ("X-API-Key", "k-123")), ANONYMOUS) == "key:reports"
    # an unknown key buys no budget of its own
    assert identify(scope("10.0.0.9", ("X-API-Key", "made-up")), ANONYMOUS) == "ip:10.0.0.9"
    assert identify(scope("10.0.0.9"), ANONYMOUS) == "ip:10.0.0.9"


def test_x_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusting = ClientIdentifier(["10.0.0.0/8"])
    forwarded = ("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.2")
    # the rightmost address that is not a trusted proxy: 6.6.6.6 is whatever the client wrote
    assert trusting.client_ip(scope("10.0.0.1", forwarded)) == "203.0.113.7"
    assert trusting.client_ip(scope("192.0.2.1", forwarded)) == "192.0.2.1"
    assert ClientIdentifier().client_ip(scope("10.0.0.1", forwarded)) == "10.0.0.1"
    assert trusting.client_ip(scope("10.0.0.1", ("X-Forwarded-For", "junk"))) == "10.0.0.1"
    assert trusting.client_ip(scope("10.0.0.1")) == "10.0.0.1"


# --- the gateway's answers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(shop: RunningServices) -> Iterator[str]:
    settings = gateway_settings(
        shop.urls,
        server={"trusted_proxies": ["127.0.0.1"]},
        rate_limits={
            "default": {"requests": 3, "per": "1m"},
            "clients": {"user:vip": {"requests": 6, "per": "1m"}},
        },
    )
    with running_gateway(settings) as url:
        yield url


def test_graphql_answers_429_with_retry_after_and_a_rate_limited_body(limited: str) -> None:
    client = GraphQLClient(limited)
    token = sign(sub=f"t-{uuid.uuid4().hex}")
    for _ in range(3):
        assert client.post("{ __typename }", token=token).status_code == 200
    refused = client.post("{ __typename }", token=token)
    client.close()
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/graphql-response+json")
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 20  # one request every 20 s
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= int(refused.headers["Retry-After"])


def test_every_other_route_answers_429_too_but_probes_are_never_limited(limited: str) -> None:
    forwarded = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
    with httpx.Client(base_url=limited, trust_env=False, headers=forwarded) as http:
        statuses = [http.get("/no-such-route").status_code for _ in range(4)]
        assert statuses == [404, 404, 404, 429]
        refused = http.get("/no-such-route")
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers and "RateLimit-Policy" in refused.headers
        assert all(http.get("/healthz").status_code == 200 for _ in range(5))


def test_budgets_are_per_subject_per_forwarded_ip_and_per_override(limited: str) -> None:
    client = GraphQLClient(limited)
    first, second = (sign(sub=f"t-{uuid.uuid4().hex}") for _ in range(2))
    assert [client.post("{ __typename }", token=first).status_code for _ in range(4)] == [
        200, 200, 200, 429,
    ]  # fmt: skip
    assert client.post("{ __typename }", token=second).status_code == 200
    vip = sign(sub="vip")
    assert [client.post("{ __typename }", token=vip).status_code for _ in range(7)] == [
        *[200] * 6, 429,
    ]  # fmt: skip
    client.close()


# --- shared budgets and Redis going away --------------------------------------------------


def redis_cleanup(*keys: str) -> None:
    async def delete() -> None:
        redis = Redis.from_url(REDIS_URL)
        try:
            await redis.delete(*keys)
        finally:
            await redis.aclose()

    asyncio.run(delete())


def test_two_gateway_processes_sharing_redis_exhaust_one_budget_together(
    tmp_path: Path, shop: RunningServices
) -> None:
    subject = f"shared-{uuid.uuid4().hex}"
    urls = []
    children = []
    try:
        for n in range(2):
            port = free_port()
            config = valid_config(shop.urls, port)
            config["redis"] = {"url": REDIS_URL}
            config["rate_limits"] = {"default": {"requests": 4, "per": "1m"}}
            path = write_config(tmp_path / f"bff{n}.yaml", config)
            child = running_bff("serve", "--config", str(path), stderr=tmp_path / f"err{n}")
            children.append((child, child.__enter__()))
            urls.append(f"http://127.0.0.1:{port}")
        for (_, child), url in zip(children, urls, strict=True):
            wait_for(f"{url}/healthz", child.process)
        token = sign(sub=subject)
        clients = [GraphQLClient(url) for url in urls]
        statuses = [
            clients[i % 2].post("{ __typename }", token=token).status_code for i in range(6)
        ]
        for client in clients:
            client.close()
    finally:
        for manager, _ in children:
            manager.__exit__(None, None, None)
        redis_cleanup(f"bff:rl:{{user:{subject}}}")
    assert statuses == [200, 200, 200, 200, 429, 429]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


@pytest.mark.parametrize(("policy", "status"), [("allow", 200), ("deny", 503)])
def test_an_unreachable_redis_fails_open_or_closed_as_configured(
    shop: RunningServices, caplog: pytest.LogCaptureFixture, policy: str, status: int
) -> None:
    settings = gateway_settings(
        shop.urls,
        redis={"url": closed_port_url()},
        rate_limits={"default": {"requests": 1, "per": "1m"}, "on_store_error": policy},
    )
    with caplog.at_level(logging.WARNING, logger="bff.limits"), running_gateway(settings) as url:
        client = GraphQLClient(url)
        responses = [client.post("{ __typename }") for _ in range(3)]
        client.close()
    assert [r.status_code for r in responses] == [status] * 3
    if policy == "deny":
        assert responses[0].json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert responses[0].headers["Retry-After"] == "1"
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not one per request


def test_the_limiter_fails_open_while_redis_is_away_and_recovers_by_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = urlparse(REDIS_URL)
    now = [0.0]
    client = f"user:recover-{uuid.uuid4().hex}"
    config = RateLimitsConfig.model_validate({"default": {"requests": 2, "per": "1m"}})

    async def scenario(proxy: TcpProxy) -> list[str]:
        shared = SharedState.at(f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}")
        store = RedisRateStore(shared.redis, shared.namespace("rl"))
        limiter = RateLimiter(store, config, clock=lambda: now[0])
        seen = []
        try:
            for step in ("up", "up", "up", "down", "down", "back"):
                if step == "down" and proxy._listener is not None:
                    proxy.stop()
                if step == "back":
                    proxy.start()
                    now[0] += 2  # past the second an unreachable store is left alone
                verdict = await limiter.check(client)
                seen.append("open" if verdict is None else str(verdict.allowed))
        finally:
            await shared.aclose()
        return seen

    with (
        caplog.at_level(logging.WARNING, logger="bff.limits"),
        TcpProxy((target.hostname or "127.0.0.1", target.port or 6379)) as proxy,
    ):
        try:
            seen = asyncio.run(scenario(proxy))
        finally:
            redis_cleanup(f"bff:rl:{{{client}}}")
    # two allowed, the third refused by Redis; while away: let through; back: refused again
    assert seen == ["True", "True", "False", "open", "open", "False"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


def test_fail_closed_raises_while_redis_is_away() -> None:
    async def scenario() -> None:
        shared = SharedState.at(closed_port_url())
        config = RateLimitsConfig.model_validate({"on_store_error": "deny"})
        limiter = RateLimiter(RedisRateStore(shared.redis, shared.namespace("rl")), config)
        try:
            with pytest.raises(StoreUnavailable):
                await limiter.check("user:x")
            with pytest.raises(StoreUnavailable):
                await limiter.check("user:x")  # within the back-off: no new connection tried
            assert limiter.store_errors == 1
        finally:
            await shared.aclose()

    asyncio.run(scenario())


def test_refusals_are_counted_for_the_metrics_layer() -> None:
    config = RateLimitsConfig.model_validate({"default": {"requests": 1, "per": "1m"}})
    limiter = RateLimiter(MemoryRateStore(), config)

    async def two() -> None:
        await limiter.check("ip:1.2.3.4")
        await limiter.check("ip:1.2.3.4")

    asyncio.run(two())
    assert limiter.rejected == 1


def test_a_gateway_lets_requests_through_while_redis_is_away_then_limits_again(
    shop: RunningServices, caplog: pytest.LogCaptureFixture
) -> None:
    target = urlparse(REDIS_URL)
    subject = f"midtest-{uuid.uuid4().hex}"
    with TcpProxy((target.hostname or "127.0.0.1", target.port or 6379)) as proxy:
        settings = gateway_settings(
            shop.urls,
            redis={"url": f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"},
            rate_limits={"default": {"requests": 2, "per": "1m"}},
        )
        token = sign(sub=subject)
        try:
            with caplog.at_level(logging.WARNING, "bff.limits"), running_gateway(settings) as url:
                client = GraphQLClient(url)
                before = [client.post("{ __typename }", token=token).status_code for _ in range(3)]
                proxy.stop()  # Redis is away
                during = [client.post("{ __typename }", token=token).status_code for _ in range(3)]
                proxy.start()  # and back, on the same port
                deadline = time.monotonic() + 20
                after = 0
                while time.monotonic() < deadline:
                    after = client.post("{ __typename }", token=token).status_code
                    if after == 429:
                        break
                    time.sleep(0.2)
                client.close()
        finally:
            redis_cleanup(f"bff:rl:{{user:{subject}}}")
    assert before == [200, 200, 429]
    assert during == [200, 200, 200]  # fail open: on_store_error defaults to allow
    assert after == 429  # the budget in Redis applies again, with no restart
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


def test_hits_batched_into_one_redis_call_each_see_the_ones_before() -> None:
    client_key = f"batch-{uuid.uuid4().hex}"

    async def scenario() -> list[bool]:
        shared = SharedState.at(REDIS_URL)
        store = RedisRateStore(shared.redis, shared.namespace("rl"))
        try:
            # one turn of the loop: all five go to Redis in one script call
            hits = await asyncio.gather(*(store.hit(client_key, Rule(3, 60.0)) for _ in range(5)))
        finally:
            await shared.aclose()
        return [allowed for allowed, _, _ in hits]

    try:
        assert asyncio.run(scenario()) == [True, True, True, False, False]
    finally:
        redis_cleanup(f"bff:rl:{{{client_key}}}")


def test_a_forged_x_forwarded_for_gets_no_fresh_budget(shop: RunningServices) -> None:
    """With no trusted proxies (the default), X-Forwarded-For is ignored, loopback peers
    included: the server in front of the app (uvicorn) must not believe it either, or every
    forged address would be a client with a budget of its own."""
    settings = gateway_settings(shop.urls, rate_limits={"default": {"requests": 3, "per": "1m"}})
    with running_gateway(settings) as url, httpx.Client(base_url=url, trust_env=False) as http:
        statuses = [
            http.get("/no-such-route", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(1, 6)
        ]
    assert statuses == [404, 404, 404, 429, 429]
