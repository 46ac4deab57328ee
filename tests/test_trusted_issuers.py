"""Tokens of an external identity provider, verified with its JWKS served on loopback by a
real HTTP server whose keys change (SPEC sections 5 and 10: external issuers' keys)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bff.app import create_app
from bff.serving import BackgroundServer
from services import RunningServices
from tests.auth_support import auth_gateway_settings
from tests.support import GraphQLClient, UpstreamCalls, sign
from tests.test_auth import b64url, hs256_by_hand, public_pem_of

IDP = "https://idp.example"
AUD = "shop-api"
ME = "{ me { id } }"
ORDERS = "{ orders(first: 1) { nodes { id } } }"


@dataclass
class Key:
    kid: str
    private: Any
    algorithm: str

    def jwk(self) -> dict[str, Any]:
        codec = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        jwk: dict[str, Any] = dict(codec.to_jwk(self.private.public_key(), as_dict=True))
        return {**jwk, "kid": self.kid, "use": "sig"}

    def sign(self, kid: str | None = None, **changes: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": IDP, "aud": AUD, "sub": "7", "iat": now, "exp": now + 300,
            "scope": "orders:read",
        }  # fmt: skip
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        headers = {"kid": kid or self.kid}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers=headers)


def rsa_key(kid: str) -> Key:
    return Key(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")


@dataclass
class IdentityProvider:
    """A JWKS endpoint whose key set the test changes, counting its fetches."""

    keys: list[Key]
    fetches: int = 0
    down: bool = False
    url: str = ""

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            self.fetches += 1
            if self.down:
                return Response(b"", 503)
            return JSONResponse({"keys": [k.jwk() for k in self.keys]})

        return Starlette(routes=[Route("/jwks.json", jwks)])


@dataclass
class Clock:
    now: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    idp: IdentityProvider
    client: GraphQLClient
    clock: Clock


@pytest.fixture
def setup(shop: RunningServices) -> Iterator[Setup]:
    idp = IdentityProvider([rsa_key("k1")])
    with BackgroundServer(idp.app()) as idp_server:
        idp.url = idp_server.url
        trusted = [{"issuer": IDP, "jwks_url": f"{idp.url}/jwks.json", "audience": AUD}]
        app = create_app(auth_gateway_settings(shop.urls, trusted_issuers=trusted))
        clock = Clock()
        app.state.auth.authenticator.trusted.clock = clock  # the 10 s rule, without sleeping
        with BackgroundServer(app) as gateway:
            client = GraphQLClient(gateway.url)
            yield Setup(idp, client, clock)
            client.close()


def refused(setup: Setup, token: str) -> None:
    response = setup.client.post(ME, token=token)
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_token_of_the_idp_gets_the_same_principal_shape(setup: Setup) -> None:
    key = setup.idp.keys[0]
    assert setup.client.data(ME, token=key.sign()) == {"me": {"id": "7"}}
    assert setup.client.data(ORDERS, token=key.sign())["orders"]["nodes"]
    as_list = key.sign(scope=None, scp=["orders:read"])
    assert setup.client.data(ORDERS, token=as_list)["orders"]["nodes"]
    no_scope = setup.client.execute(ORDERS, token=key.sign(scope=None))
    assert no_scope["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert setup.idp.fetches == 1  # fetched once, then cached


def test_upstreams_receive_the_idp_subject(setup: Setup, calls: UpstreamCalls) -> None:
    setup.client.data(ME, token=setup.idp.keys[0].sign(sub="9"))
    assert calls.last_headers("users")["x-user-id"] == "9"


@pytest.mark.parametrize(
    "changes",
    [  # times taken when the test runs, not at collection: the suite may run long
        lambda: {"exp": int(time.time()) - 120},
        lambda: {"nbf": int(time.time()) + 600},
        lambda: {"aud": "someone-else"},
        lambda: {"iss": "https://evil.example"},
        lambda: {"sub": None},
        lambda: {"exp": None},
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "untrusted-issuer", "no-sub", "no-exp"],
)
def test_bad_claims_are_refused(setup: Setup, changes: Callable[[], dict[str, Any]]) -> None:
    refused(setup, setup.idp.keys[0].sign(**changes()))


def test_a_signature_by_another_key_under_a_known_kid_is_refused(setup: Setup) -> None:
    impostor = rsa_key("k1")
    refused(setup, impostor.sign())


def test_alg_none_is_refused(setup: Setup) -> None:
    header = b64url(b'{"alg":"none","kid":"k1","typ":"JWT"}')
    payload = jwt.decode(setup.idp.keys[0].sign(), options={"verify_signature": False})
    refused(setup, f"{header}.{b64url(orjson.dumps(payload))}.")


def test_hs_rs_confusion_with_the_public_key_is_refused(setup: Setup) -> None:
    key = setup.idp.keys[0]
    payload = jwt.decode(key.sign(), options={"verify_signature": False})
    private_pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    refused(setup, hs256_by_hand(payload, public_pem_of(private_pem)))


def test_an_es256_token_under_an_rsa_key_is_refused(setup: Setup) -> None:
    ec_key = Key("k1", ec.generate_private_key(ec.SECP256R1()), "ES256")
    refused(setup, ec_key.sign())


def test_unknown_kids_refetch_at_most_once_per_ten_seconds(setup: Setup) -> None:
    known = setup.idp.keys[0]
    assert setup.client.data(ME, token=known.sign())  # first fetch
    setup.clock.now += 11
    for kid in ("x1", "x2", "x3", "x4"):
        refused(setup, known.sign(kid=kid))
    assert setup.idp.fetches == 2  # one refetch for the whole flood
    setup.clock.now += 11
    refused(setup, known.sign(kid="x5"))
    assert setup.idp.fetches == 3


def test_key_rotation_at_the_idp(setup: Setup) -> None:
    old = setup.idp.keys[0]
    before = old.sign()
    assert setup.client.data(ME, token=before) == {"me": {"id": "7"}}
    new = rsa_key("k2")
    setup.idp.keys = [new]
    setup.clock.now += 11
    assert setup.client.data(ME, token=new.sign()) == {"me": {"id": "7"}}  # refetched at once
    assert setup.idp.fetches == 2
    refused(setup, old.sign(sub="8"))  # withdrawn by the provider
    refused(setup, before)  # not even a token verified (and cached) before the rotation


def test_a_provider_that_cannot_be_reached_lets_nobody_in(setup: Setup) -> None:
    setup.idp.down = True
    response = setup.client.post(ME, token=setup.idp.keys[0].sign())
    assert response.status_code in (502, 503)
    assert response.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_known_keys_survive_a_provider_outage(setup: Setup) -> None:
    key = setup.idp.keys[0]
    assert setup.client.data(ME, token=key.sign())
    setup.idp.down = True
    setup.clock.now += 400  # the key cache is old: a refetch is tried, fails, the keys stay
    assert setup.client.data(ME, token=key.sign(sub="8")) == {"me": {"id": "8"}}
    assert setup.idp.fetches == 2


def test_the_gateways_own_tokens_still_work_beside_the_idp(setup: Setup) -> None:
    assert setup.client.data(ME, token=sign("3")) == {"me": {"id": "3"}}


def test_an_ec_key_of_the_idp_verifies_es256(setup: Setup) -> None:
    ec_key = Key("e1", ec.generate_private_key(ec.SECP256R1()), "ES256")
    setup.idp.keys.append(ec_key)
    setup.clock.now += 11
    assert setup.client.data(ME, token=ec_key.sign()) == {"me": {"id": "7"}}
