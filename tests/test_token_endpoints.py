"""Logging in, refreshing and revoking, over REST and GraphQL, for both token formats and both
token stores (SPEC sections 4, 5 and 10): real gateways, the real auth service, real Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from services import RunningServices
from tests.auth_support import auth_gateway_settings, redis_prefix
from tests.support import (
    AUDIENCE,
    ISSUER,
    SECRET,
    GraphQLClient,
    running_gateway,
    running_shop,
    sign,
)

__all__ = ["redis_prefix"]

ME = "{ me { id } }"
ORDERS = "{ orders(first: 1) { nodes { id } } }"
LOGIN = """mutation($u: String!, $p: String!) {
  login(username: $u, password: $p) { accessToken tokenType expiresIn refreshToken } }"""
REFRESH = """mutation($r: String!) {
  refreshToken(refreshToken: $r) { accessToken tokenType expiresIn refreshToken } }"""
LOGOUT = "mutation { logout }"


class Gateway:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10, trust_env=False)
        self.gql = GraphQLClient(url)

    def token(self, username: str = "user2", password: str = "password2", **kw: Any) -> Any:
        return self.http.post(
            "/auth/token", json={"username": username, "password": password}, **kw
        )

    def login(self, username: str = "user2", password: str = "password2") -> dict[str, Any]:
        response = self.token(username, password)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/auth/refresh", json={"refresh_token": refresh_token})

    def revoke(self, token: str) -> httpx.Response:
        return self.http.post("/auth/revoke", data={"token": token})

    def me(self, token: str) -> httpx.Response:
        return self.gql.post(ME, token=token)

    def close(self) -> None:
        self.http.close()
        self.gql.close()


KINDS = [("jwt", "memory"), ("jwt", "redis"), ("opaque", "memory"), ("opaque", "redis")]


@pytest.fixture(params=KINDS, ids=[f"{f}-{s}" for f, s in KINDS])
def gateway(
    request: pytest.FixtureRequest, shop: RunningServices, redis_prefix: str
) -> Iterator[Gateway]:
    token_format, store = request.param
    settings = auth_gateway_settings(
        shop.urls, prefix=redis_prefix, token_format=token_format, store=store
    )
    with running_gateway(settings) as url:
        gw = Gateway(url)
        yield gw
        gw.close()


@pytest.fixture(scope="module")
def plain(shop: RunningServices) -> Iterator[Gateway]:
    """One gateway (JWT, memory store) for what does not depend on the format or the store."""
    with running_gateway(auth_gateway_settings(shop.urls)) as url:
        gw = Gateway(url)
        yield gw
        gw.close()


def test_login_answers_oauth_tokens_that_authenticate(gateway: Gateway) -> None:
    response = gateway.token()
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert gateway.me(body["access_token"]).json()["data"] == {"me": {"id": "2"}}


def test_login_takes_a_form_too(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/auth/token", data={"grant_type": "password", "username": "user3", "password": "password3"}
    )
    assert response.status_code == 200, response.text
    assert gateway.me(response.json()["access_token"]).json()["data"]["me"] == {"id": "3"}


def test_the_admin_gets_the_admin_scopes(gateway: Gateway) -> None:
    admin = gateway.login("user1", "password1")["access_token"]
    customer = gateway.login()["access_token"]
    assert gateway.gql.post(ORDERS, token=admin).json()["data"]["orders"]["nodes"]
    refused = gateway.gql.post(ORDERS, token=customer).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("username", "password"), [("user2", "wrong"), ("nobody", "password2"), ("user99999", "x")]
)
def test_bad_credentials_are_invalid_grant(plain: Gateway, username: str, password: str) -> None:
    response = plain.token(username, password)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"]


@pytest.mark.parametrize(
    "request_kw",
    [
        {"json": {"username": "user2"}},
        {"json": {"username": "user2", "password": 2}},
        {"json": ["user2", "password2"]},
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"content": b"username=user2", "headers": {"Content-Type": "text/plain"}},
        {"content": b"username=a&username=b&password=p",
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"json": {"grant_type": "client_credentials", "username": "user2", "password": "p"}},
        {"json": {"username": "user2", "password": "p" * 20_000}},
        {},
    ],
)  # fmt: skip
def test_malformed_token_requests_are_invalid_request(
    plain: Gateway, request_kw: dict[str, Any]
) -> None:
    response = plain.http.post("/auth/token", **request_kw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_refresh_rotates_and_a_reused_refresh_token_revokes_its_family(gateway: Gateway) -> None:
    first = gateway.login()
    second = gateway.refresh(first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert gateway.me(second["access_token"]).status_code == 200
    third = gateway.refresh(second["refresh_token"]).json()
    assert gateway.me(third["access_token"]).status_code == 200

    reused = gateway.refresh(first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # the whole family: the live refresh token and the latest access token
    assert gateway.refresh(third["refresh_token"]).json()["error"] == "invalid_grant"
    assert gateway.me(third["access_token"]).status_code == 401


@pytest.mark.parametrize(
    "refresh_token",
    ["bfr_nope.nope", "not-a-refresh-token", "eyJhbGciOiJIUzI1NiJ9.e30.x", "bfr_" + "a" * 300],
)
def test_unknown_refresh_tokens_are_invalid_grant(plain: Gateway, refresh_token: str) -> None:
    response = plain.refresh(refresh_token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_an_access_token_is_not_a_refresh_token_nor_the_reverse(gateway: Gateway) -> None:
    tokens = gateway.login()
    assert gateway.refresh(tokens["access_token"]).json()["error"] == "invalid_grant"
    refused = gateway.me(tokens["refresh_token"])
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_refresh_without_a_token_is_invalid_request(plain: Gateway) -> None:
    response = plain.http.post("/auth/refresh", json={})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_revoking_an_access_token(gateway: Gateway) -> None:
    tokens = gateway.login()
    other = gateway.login()
    assert gateway.revoke(tokens["access_token"]).status_code == 200
    refused = gateway.me(tokens["access_token"])
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert gateway.me(other["access_token"]).status_code == 200


def test_revoking_a_refresh_token_revokes_its_family(gateway: Gateway) -> None:
    tokens = gateway.login()
    assert gateway.revoke(tokens["refresh_token"]).status_code == 200
    assert gateway.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert gateway.me(tokens["access_token"]).status_code == 401


@pytest.mark.parametrize("token", ["bfa_unknown", "bfr_x.y", "garbage", "a.b.c"])
def test_revoking_an_unknown_token_is_fine(plain: Gateway, token: str) -> None:
    assert plain.revoke(token).status_code == 200


def test_revoke_with_no_body_revokes_the_bearer_token(gateway: Gateway) -> None:
    tokens = gateway.login()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert gateway.http.post("/auth/revoke", headers=bearer).status_code == 200
    assert gateway.me(tokens["access_token"]).status_code == 401
    assert gateway.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "request_kw",
    [
        {},
        {"headers": {"Authorization": "Basic dXNlcjpwYXNz"}},
        {"json": {"token": 5}},
        {"json": {"tok": "x"}},
        {"content": b"token=x", "headers": {"Content-Type": "text/plain"}},
    ],
)
def test_malformed_revocations_are_invalid_request(
    plain: Gateway, request_kw: dict[str, Any]
) -> None:
    response = plain.http.post("/auth/revoke", **request_kw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- GraphQL ------------------------------------------------------------------------------------


def test_graphql_login_refresh_and_logout(gateway: Gateway) -> None:
    login = gateway.gql.data(LOGIN, {"u": "user2", "p": "password2"})["login"]
    assert login["tokenType"] == "Bearer" and login["expiresIn"] == 900
    assert gateway.me(login["accessToken"]).json()["data"]["me"] == {"id": "2"}

    fresh = gateway.gql.data(REFRESH, {"r": login["refreshToken"]})["refreshToken"]
    assert gateway.me(fresh["accessToken"]).status_code == 200
    reused = gateway.gql.execute(REFRESH, {"r": login["refreshToken"]})
    assert reused["data"] is None
    assert reused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    again = gateway.gql.data(LOGIN, {"u": "user2", "p": "password2"})["login"]
    assert gateway.gql.data(LOGOUT, token=again["accessToken"]) == {"logout": True}
    assert gateway.me(again["accessToken"]).status_code == 401
    refused = gateway.gql.execute(REFRESH, {"r": again["refreshToken"]})
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_graphql_login_with_bad_credentials_is_unauthenticated(plain: Gateway) -> None:
    body = plain.gql.execute(LOGIN, {"u": "user2", "p": "nope"})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["path"] == ["login"]


def test_anonymous_logout_is_unauthenticated(plain: Gateway) -> None:
    body = plain.gql.execute(LOGOUT)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- one format at a time -----------------------------------------------------------------------


def test_jwt_access_tokens_carry_the_claims(shop: RunningServices, redis_prefix: str) -> None:
    with running_gateway(auth_gateway_settings(shop.urls, access_ttl="2m")) as url:
        gw = Gateway(url)
        token = gw.login("user1", "password1")["access_token"]
        gw.close()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
    assert claims["sub"] == "1"
    assert set(claims["scope"].split()) == {"admin", "orders:read", "users:read:email"}
    assert claims["exp"] - claims["iat"] == 120
    assert claims["jti"]


def test_opaque_access_tokens_are_random_and_not_jwts(
    shop: RunningServices, redis_prefix: str
) -> None:
    settings = auth_gateway_settings(shop.urls, token_format="opaque")
    with running_gateway(settings) as url:
        gw = Gateway(url)
        tokens = {gw.login()["access_token"] for _ in range(3)}
        gw.close()
    assert len(tokens) == 3
    for token in tokens:
        assert token.startswith("bfa_") and "." not in token and len(token) >= 40
        with pytest.raises(jwt.DecodeError):
            jwt.get_unverified_header(token)


# --- never a password or a token in the logs ----------------------------------------------------


def test_passwords_and_tokens_never_reach_the_logs(
    shop: RunningServices, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = "planted-Password-7e1f"
    caplog.set_level(logging.DEBUG)
    with running_gateway(auth_gateway_settings(shop.urls)) as url:
        gw = Gateway(url)
        gw.token("user2", password)
        gw.gql.post(LOGIN, {"u": "user2", "p": password})
        tokens = gw.login()
        gw.refresh(tokens["refresh_token"])
        gw.revoke(tokens["access_token"])
        gw.me(tokens["access_token"])
        gw.close()
    assert caplog.records  # the gateway did log something
    text = caplog.text
    assert password not in text
    assert tokens["access_token"] not in text and tokens["refresh_token"] not in text


# --- the auth service down ----------------------------------------------------------------------


def test_auth_service_down_is_503_and_nobody_gets_in(redis_prefix: str) -> None:
    with running_shop() as running:
        urls = dict(running.urls)
    # every service is stopped now: the gateway points at ports nobody listens on
    with running_gateway(auth_gateway_settings(urls)) as url:
        gw = Gateway(url)
        response = gw.token()
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "temporarily_unavailable"
        assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        graphql = gw.gql.execute(LOGIN, {"u": "user2", "p": "password2"})
        assert graphql["data"] is None
        assert graphql["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        gw.close()


def test_logout_with_a_token_the_gateway_did_not_issue_through_login(plain: Gateway) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "2", "iat": now, "exp": now + 60}
    no_jti = jwt.encode(claims, SECRET, algorithm="HS256")
    assert plain.gql.data(LOGOUT, token=no_jti) == {"logout": True}
    with_jti = sign("2")  # signed with the key, never logged in: no refresh family
    assert plain.gql.data(LOGOUT, token=with_jti) == {"logout": True}
    assert plain.me(with_jti).status_code == 401


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_an_opaque_token_expires_with_its_ttl(
    shop: RunningServices, redis_prefix: str, store: str
) -> None:
    settings = auth_gateway_settings(
        shop.urls, prefix=redis_prefix, token_format="opaque", store=store, access_ttl="1s"
    )
    with running_gateway(settings) as url:
        gw = Gateway(url)
        tokens = gw.login()
        assert tokens["expires_in"] == 1
        deadline = time.monotonic() + 15
        while (status := gw.me(tokens["access_token"]).status_code) == 200:
            assert time.monotonic() < deadline, "the token outlived its TTL"
            time.sleep(0.1)
        assert status == 401
        assert gw.refresh(tokens["refresh_token"]).status_code == 200  # the refresh token lives on
        gw.close()
