"""Login throttling (SPEC section 15): `/auth/token`, `/auth/refresh` and the `login` and
`refreshToken` mutations share budgets per client address and per username, with the embedded
defaults (10 a minute per username, 30 per address) when nobody configured `rate_limits`.

The budgets as pure decisions over an injected clock first, then real gateways over the real
auth service, with the rate-limit store in memory and in Redis (two replicas sharing it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from bff.auth.throttle import username_account
from bff.config import ConfigError, Settings, settings_from_dict
from bff.errors import RateLimited, UpstreamUnavailable
from bff.limits import MemoryRateStore
from bff.limits.login import LoginThrottle
from services import RunningServices
from tests.auth_support import REDIS_URL, closed_port_url, redis_prefix
from tests.support import (
    AUDIENCE,
    ISSUER,
    SECRET,
    GraphQLClient,
    UpstreamCalls,
    running_gateway,
)

__all__ = ["redis_prefix"]

LOGIN = """mutation($u: String!, $p: String!) {
  login(username: $u, password: $p) { accessToken refreshToken } }"""
REFRESH = """mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken } }"""


# --- the budgets, as decisions ----------------------------------------------------------------


class MicroClock:
    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now


def throttle(clock: MicroClock, **login: Any) -> LoginThrottle:
    config = settings_from_dict({"rate_limits": {"login": login}}).rate_limits
    return LoginThrottle(MemoryRateStore(clock), config)


def attempts(gate: LoginThrottle, address: str | None, account: str | None, n: int) -> list[int]:
    """The `retryAfter` of each of `n` attempts (0 when admitted)."""

    async def run() -> list[int]:
        out = []
        for _ in range(n):
            try:
                await gate.admit(address, account)
                out.append(0)
            except RateLimited as refused:
                out.append(int(refused.extra["retryAfter"]))
        return out

    return asyncio.run(run())


def test_the_defaults_are_ten_a_minute_per_username_and_thirty_per_address() -> None:
    login = Settings().rate_limits.login
    assert login.enabled
    assert (login.per_username.requests, login.per_username.per) == (10, 60.0)
    assert (login.per_address.requests, login.per_address.per) == (30, 60.0)


def test_a_budget_written_in_part_keeps_the_other_default() -> None:
    login = settings_from_dict(
        {"rate_limits": {"login": {"per_username": {"per": "2m"}, "per_address": {"per": "5m"}}}}
    ).rate_limits.login
    assert (login.per_username.requests, login.per_username.per) == (10, 120.0)
    assert (login.per_address.requests, login.per_address.per) == (30, 300.0)


def test_an_account_gets_its_budget_then_waits_whole_seconds() -> None:
    clock = MicroClock()
    gate = throttle(clock)
    alice = username_account("alice")
    results = attempts(gate, "10.0.0.1", alice, 12)
    assert results[:10] == [0] * 10
    assert results[10] == results[11] == 6  # one attempt per 6 s comes back: 60 s / 10
    assert attempts(gate, "10.0.0.2", alice, 1) == [6]  # from anywhere
    assert attempts(gate, "10.0.0.1", username_account("bob"), 1) == [0]  # bob is not alice
    clock.now += 6_000_000
    assert attempts(gate, "10.0.0.3", alice, 2) == [0, 6]  # the budget reopens one at a time


@pytest.mark.parametrize("variant", ["ALICE", "Alice", " alice ", "aLiCe"])
def test_a_username_is_one_account_whatever_its_case(variant: str) -> None:
    gate = throttle(MicroClock(), per_username={"requests": 3})
    assert attempts(gate, None, username_account("alice"), 3) == [0, 0, 0]
    assert attempts(gate, None, username_account(variant), 1)[0] > 0


def test_an_address_gets_its_budget_across_accounts() -> None:
    gate = throttle(MicroClock())
    results = [attempts(gate, "10.0.0.9", username_account(f"u{i}"), 1)[0] for i in range(32)]
    assert results[:30] == [0] * 30
    assert results[30] == results[31] == 2  # 60 s / 30
    assert attempts(gate, "10.0.0.8", username_account("u99"), 1) == [0]  # another address


def test_a_refusal_does_not_spend_budget() -> None:
    clock = MicroClock()
    gate = throttle(clock, per_username={"requests": 2, "per": "10s"})
    bob = username_account("bob")
    assert attempts(gate, None, bob, 50) == [0, 0] + [5] * 48  # hammering buys no extra wait
    clock.now += 5_000_000
    assert attempts(gate, None, bob, 1) == [0]


def test_an_unreachable_store_follows_on_store_error() -> None:
    class DownStore(MemoryRateStore):
        async def hit(self, key: str, rule: Any) -> tuple[bool, int, int]:
            from bff.limits import StoreUnavailable

            raise StoreUnavailable("down")

    def gate(policy: str) -> LoginThrottle:
        config = settings_from_dict({"rate_limits": {"on_store_error": policy}}).rate_limits
        return LoginThrottle(DownStore(), config)

    assert attempts(gate("allow"), "10.0.0.1", "user:x", 3) == [0, 0, 0]
    with pytest.raises(UpstreamUnavailable):
        asyncio.run(gate("deny").admit("10.0.0.1", "user:x"))


@pytest.mark.parametrize(
    ("login", "path"),
    [
        ({"per_username": {"requests": 0}}, "rate_limits.login.per_username.requests"),
        ({"per_address": {"per": "0s"}}, "rate_limits.login.per_address.per"),
        ({"per_ip": {"requests": 5}}, "rate_limits.login.per_ip"),
    ],
)
def test_config_errors_name_the_key(login: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_dict({"rate_limits": {"login": login}})
    assert path in str(error.value)


# --- real gateways ----------------------------------------------------------------------------


def settings(
    urls: Mapping[str, Any],
    *,
    store: str,
    prefix: str = "bff:",
    rate_limits: Mapping[str, Any] | None = None,
    trusted_proxies: list[str] | None = None,
    redis_url: str = REDIS_URL,
) -> Settings:
    """A gateway issuing JWTs; rate limits in Redis when `store` is redis, else in memory;
    `rate_limits` omitted: nobody configured them (the embedded defaults)."""
    data: dict[str, Any] = {
        "upstreams": {n: {"instances": [{"url": u} for u in us]} for n, us in urls.items()},
        "auth": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwt": {"algorithm": "HS256", "secret": SECRET},
        },
    }
    if store == "redis":
        data["redis"] = {"url": redis_url, "key_prefix": prefix}
    if rate_limits is not None:
        data["rate_limits"] = rate_limits
    if trusted_proxies is not None:
        data["server"] = {"trusted_proxies": trusted_proxies}
    return settings_from_dict(data)


class Door:
    """One gateway, through REST and GraphQL."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10, trust_env=False)
        self.gql = GraphQLClient(url)

    def token(self, username: str, password: str, **kw: Any) -> httpx.Response:
        return self.http.post(
            "/auth/token", json={"username": username, "password": password}, **kw
        )

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/auth/refresh", json={"refresh_token": refresh_token})

    def login_mutation(self, username: str, password: str) -> dict[str, Any]:
        result: dict[str, Any] = self.gql.execute(LOGIN, {"u": username, "p": password})
        return result

    def close(self) -> None:
        self.http.close()
        self.gql.close()


@pytest.fixture
def door(
    request: pytest.FixtureRequest, shop: RunningServices, redis_prefix: str
) -> Iterator[Door]:
    store = getattr(request, "param", "memory")
    with running_gateway(settings(shop.urls, store=store, prefix=redis_prefix)) as url:
        d = Door(url)
        yield d
        d.close()


STORES = pytest.mark.parametrize("door", ["memory", "redis"], indirect=True)


def assert_throttled(response: httpx.Response) -> int:
    """A REST refusal as SPEC section 15 says it; its `Retry-After`."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["error"] == "too_many_requests"
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert "access_token" not in body
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 120
    return int(retry_after)


def assert_rate_limited(result: Mapping[str, Any]) -> None:
    assert result["data"] is None
    error = result["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["path"] == ["login"] or error["path"] == ["refreshToken"]
    assert error["extensions"]["retryAfter"] >= 1


def password_checks(calls: UpstreamCalls) -> int:
    return calls.by_path("auth").get("POST /verify", 0)


@STORES
def test_wrong_passwords_are_throttled_and_then_the_right_one_is_refused(
    door: Door, shop: RunningServices
) -> None:
    calls = UpstreamCalls(shop)
    try:
        for _ in range(10):
            assert door.token("user2", "wrong").status_code == 400
        checked = password_checks(calls)
        assert_throttled(door.token("user2", "password2"))  # the right password, over the limit
        assert_throttled(door.token("USER2", "password2"))  # the same account
        assert_rate_limited(door.login_mutation("user2", "password2"))
        assert password_checks(calls) == checked  # refused before the auth service is asked
        assert door.token("user3", "password3").status_code == 200  # another account: fine
        metrics = door.http.get("/metrics").text
        assert 'bff_rate_limited_total{client_kind="ip"} 2.0' in metrics  # the REST refusals
    finally:
        calls.close()


@STORES
def test_the_graphql_login_shares_the_budget_of_the_rest_endpoint(door: Door) -> None:
    for _ in range(5):
        assert door.token("user2", "wrong").status_code == 400
    for _ in range(5):
        wrong = door.login_mutation("user2", "wrong")
        assert wrong["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_rate_limited(door.login_mutation("user2", "password2"))
    assert_throttled(door.token("user2", "password2"))


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_one_address_trying_many_usernames_is_throttled(
    shop: RunningServices, redis_prefix: str, store: str
) -> None:
    # The default's 30 a minute, as 30 an hour: the same burst, and a slow machine's 30
    # attempts cannot earn the 31st back meanwhile (it would after 2 s with the default).
    limits = {"login": {"per_address": {"requests": 30, "per": "1h"}}}
    config = settings(shop.urls, store=store, prefix=redis_prefix, rate_limits=limits)
    with running_gateway(config) as url:
        d = Door(url)
        try:
            for i in range(30):
                assert d.token(f"nobody{i}", "guess").status_code == 400
            assert_throttled(d.token("user3", "password3"))
            assert_rate_limited(d.login_mutation("user4", "password4"))
        finally:
            d.close()


def test_refreshes_count_per_address_and_per_family(shop: RunningServices) -> None:
    limits = {"login": {"per_username": {"requests": 3}, "per_address": {"requests": 10}}}
    with running_gateway(settings(shop.urls, store="memory", rate_limits=limits)) as url:
        d = Door(url)
        try:
            for i in range(3):
                assert d.refresh(f"bfr_famA.secret{i}").json()["error"] == "invalid_grant"
            assert_throttled(d.refresh("bfr_famA.secret9"))  # that family's budget is spent
            assert_rate_limited(d.gql.execute(REFRESH, {"r": "bfr_famA.other"}))
            # every attempt counts against the address, refused ones too: 5 of 10 so far
            assert d.refresh("bfr_famB.secret").json()["error"] == "invalid_grant"
            assert d.refresh("not-a-refresh-token").json()["error"] == "invalid_grant"
            tokens = d.token("user2", "password2").json()
            assert d.refresh(tokens["refresh_token"]).status_code == 200
            assert d.refresh("bfr_famC.x").status_code == 400  # the 10th
            assert_throttled(d.token("user3", "password3"))  # logins and refreshes together
        finally:
            d.close()


def test_the_budget_reopens_after_retry_after(shop: RunningServices) -> None:
    limits = {"login": {"per_username": {"requests": 2, "per": "3s"}}}
    with running_gateway(settings(shop.urls, store="memory", rate_limits=limits)) as url:
        d = Door(url)
        try:
            assert d.token("user2", "wrong").status_code == 400
            assert d.token("user2", "wrong").status_code == 400
            wait = assert_throttled(d.token("user2", "password2"))
            assert wait in (1, 2)  # what is left of 1.5 s, rounded up
            time.sleep(wait)
            assert d.token("user2", "password2").status_code == 200
        finally:
            d.close()


def test_replicas_sharing_redis_share_the_budgets(shop: RunningServices, redis_prefix: str) -> None:
    config = settings(shop.urls, store="redis", prefix=redis_prefix)
    with ExitStack() as stack:
        a = Door(stack.enter_context(running_gateway(config)))
        b = Door(stack.enter_context(running_gateway(config)))
        try:
            for _ in range(5):
                assert a.token("user2", "wrong").status_code == 400
                assert b.token("user2", "wrong").status_code == 400
            assert_throttled(a.token("user2", "password2"))
            assert_throttled(b.token("user2", "password2"))
        finally:
            a.close()
            b.close()


def test_the_address_is_the_client_behind_a_trusted_proxy(shop: RunningServices) -> None:
    limits = {"login": {"per_address": {"requests": 2}}}
    config = settings(shop.urls, store="memory", rate_limits=limits, trusted_proxies=["127.0.0.1"])
    with running_gateway(config) as url:
        d = Door(url)
        try:
            one, two = {"X-Forwarded-For": "203.0.113.1"}, {"X-Forwarded-For": "203.0.113.2"}
            assert d.token("a1", "x", headers=one).status_code == 400
            assert d.token("a2", "x", headers=one).status_code == 400
            assert_throttled(d.token("a3", "x", headers=one))
            assert d.token("a4", "x", headers=two).status_code == 400  # another client
            assert_rate_limited(d.gql.execute(LOGIN, {"u": "a5", "p": "x"}, headers=one))
        finally:
            d.close()


@pytest.mark.parametrize(("policy", "status"), [("allow", 200), ("deny", 503)])
def test_an_unreachable_redis_lets_logins_through_or_refuses_them(
    shop: RunningServices, policy: str, status: int
) -> None:
    config = settings(
        shop.urls,
        store="redis",
        redis_url=closed_port_url(),
        rate_limits={"on_store_error": policy},
    )
    with running_gateway(config) as url:
        d = Door(url)
        try:
            for _ in range(12):  # past the username budget: nothing counts them
                response = d.token("user2", "password2")
                assert response.status_code == status, response.text
            if status == 503:
                assert response.json()["error"] == "temporarily_unavailable"
        finally:
            d.close()


def test_rate_limits_disabled_turns_login_throttling_off(shop: RunningServices) -> None:
    config = settings(shop.urls, store="memory", rate_limits={"enabled": False})
    with running_gateway(config) as url:
        d = Door(url)
        try:
            for _ in range(12):
                assert d.token("user2", "wrong").status_code == 400
            assert d.token("user2", "password2").status_code == 200
        finally:
            d.close()
