"""Authentication and authorization at the gateway, with real signed tokens (SPEC 3, 5, 10).

A presented token that is not valid is refused with 401 before any upstream call; no token at
all means anonymous, and protected fields then fail one by one inside a 200 answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services import RunningServices, shop_data
from tests.support import (
    ALL_SCOPES,
    AUDIENCE,
    ISSUER,
    SECRET,
    GraphQLClient,
    UpstreamCalls,
    gateway_settings,
    running_gateway,
    sign,
)

DATA = shop_data(42)
PLAIN = "2"  # a customer without scopes
OTHER = "3"  # another customer without scopes
ME = "{ me { id } }"
PLACE_ORDER = "mutation { placeOrder(input: {items: [{productId: 1, quantity: 1}]}) { id } }"
ADD_REVIEW = 'mutation { addReview(input: {productId: 1, rating: 5, body: "nice"}) { id } }'


def first_order_of(user_id: int) -> int:
    return min(o["id"] for o in DATA.orders.values() if o["userId"] == user_id)


def claims(**changes: Any) -> dict[str, Any]:
    """Valid access-token claims for user 1; a change to None removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "1",
        "iat": now,
        "exp": now + 300,
        "jti": "test-jti",
        "scope": " ".join(ALL_SCOPES),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256_by_hand(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT built without PyJWT (which refuses a PEM as an HMAC secret)."""
    signing_input = b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"})) + "."
    signing_input += b64url(orjson.dumps(payload))
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def rsa_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ec_private_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem_of(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    return body["errors"][0]


def assert_refused(response: httpx.Response, credential: str | None, calls: UpstreamCalls) -> None:
    """401, an UNAUTHENTICATED GraphQL error body, a challenge, no echo, no upstream call."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    body = response.json()
    assert "data" not in body
    assert codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"]
    if credential is not None:
        assert credential not in response.text
        assert credential not in str(response.headers)
    assert calls.total() == 0


# --- refused tokens -------------------------------------------------------------------------

RSA_PEM = rsa_private_pem()

BAD_TOKENS = {
    "expired": lambda: sign(now=time.time() - 3600, ttl=300),
    "wrong_signature": lambda: sign(secret="another-secret-0123456789-abcdefghij"),
    "alg_none": lambda: jwt.encode(claims(), None, algorithm="none"),
    "alg_none_by_hand": lambda: (
        b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(orjson.dumps(claims())) + "."
    ),
    "wrong_audience": lambda: sign(audience="someone-else"),
    "wrong_issuer": lambda: sign(issuer="https://idp.invalid"),
    "missing_exp": lambda: jwt.encode(claims(exp=None), SECRET, algorithm="HS256"),
    "missing_sub": lambda: jwt.encode(claims(sub=None), SECRET, algorithm="HS256"),
    "missing_aud": lambda: jwt.encode(claims(aud=None), SECRET, algorithm="HS256"),
    "sub_not_a_string": lambda: jwt.encode(claims(sub=1), SECRET, algorithm="HS256"),
    "rs256_to_hs256_gateway": lambda: jwt.encode(claims(), RSA_PEM, algorithm="RS256"),
    "tampered_payload": lambda: tamper(sign(PLAIN, [])),
    "garbage": lambda: "not-a-jwt",
    "three_garbage_parts": lambda: "aaaa.bbbb.cccc",
}


def tamper(token: str) -> str:
    """A token whose payload claims every scope but keeps the original signature."""
    header, _, signature = token.split(".")
    return ".".join([header, b64url(orjson.dumps(claims(sub=PLAIN))), signature])


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_bearer_token_is_refused_before_any_upstream_call(
    make: Any, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    token = make()
    response = gql.post("{ product(id: 1) { name } me { id } }", token=token)
    assert_refused(response, token, calls)


@pytest.mark.parametrize(
    ("scheme", "credential"),
    [
        ("Basic", "dXNlcjE6cGFzc3dvcmQx"),
        ("Bearer", None),
        ("Bearer", "two tokens"),
        ("Token", "x" * 20),
    ],
    ids=["basic", "bearer_without_token", "bearer_with_spaces", "other_scheme"],
)
def test_a_malformed_authorization_header_is_refused(
    scheme: str, credential: str | None, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    authorization = scheme if credential is None else f"{scheme} {credential}"
    response = gql.post("{ product(id: 1) { name } }", headers={"Authorization": authorization})
    assert_refused(response, credential, calls)


def test_refusal_speaks_the_media_type_the_client_accepts(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = gql.post(ME, token="garbage", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert codes(response.json()) == ["UNAUTHENTICATED"]
    assert calls.total() == 0


def test_a_token_just_expired_beyond_leeway_is_refused(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    token = sign(now=time.time() - 60, ttl=30)
    assert_refused(gql.post(ME, token=token), token, calls)


# --- valid tokens and anonymous callers -------------------------------------------------------


def test_a_valid_token_resolves_the_principal(gql: GraphQLClient) -> None:
    assert gql.data(ME, token=sign())["me"] == {"id": "1"}
    assert gql.data(ME, token=sign(PLAIN, []))["me"] == {"id": PLAIN}


def test_me_returns_the_callers_user_record(gql: GraphQLClient) -> None:
    me = gql.data("{ me { id name email } }", token=sign(PLAIN, []))["me"]
    user = DATA.users[int(PLAIN)]
    assert me == {"id": PLAIN, "name": user["name"], "email": user["email"]}


def test_anonymous_me_is_an_unauthenticated_field_error(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    body = gql.execute(ME)
    assert body["data"] == {"me": None}
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["me"]
    assert calls.total() == 0


def test_anonymous_callers_read_public_fields(gql: GraphQLClient) -> None:
    product = gql.data("{ product(id: 1) { id name } }")["product"]
    assert product == {"id": "1", "name": DATA.products[1]["name"]}


def test_anonymous_partial_data_keeps_public_fields(gql: GraphQLClient) -> None:
    body = gql.execute("{ product(id: 1) { id } me { id } }")
    assert body["data"] == {"product": {"id": "1"}, "me": None}
    assert codes(body) == ["UNAUTHENTICATED"]


# --- order(id): owner, or scope orders:read ---------------------------------------------------

ORDER = "query($id: ID!) { order(id: $id) { id user { id } } }"


def test_the_owner_reads_their_order(gql: GraphQLClient) -> None:
    order_id = first_order_of(int(PLAIN))
    order = gql.data(ORDER, {"id": str(order_id)}, token=sign(PLAIN, []))["order"]
    assert order == {"id": str(order_id), "user": {"id": PLAIN}}


def test_another_customer_is_forbidden_the_order(gql: GraphQLClient) -> None:
    order_id = first_order_of(int(PLAIN))
    body = gql.execute(ORDER, {"id": str(order_id)}, token=sign(OTHER, []))
    assert body["data"] == {"order": None}
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["order"]


def test_scope_orders_read_reads_any_order(gql: GraphQLClient) -> None:
    order_id = first_order_of(int(OTHER))
    order = gql.data(ORDER, {"id": str(order_id)}, token=sign("7", ["orders:read"]))["order"]
    assert order == {"id": str(order_id), "user": {"id": OTHER}}


def test_anonymous_order_is_unauthenticated_without_loading_it(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    body = gql.execute(ORDER, {"id": str(first_order_of(int(PLAIN)))})
    assert body["data"] == {"order": None}
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["order"]
    assert calls.total() == 0


def test_a_missing_order_is_null_for_a_scope_holder(gql: GraphQLClient) -> None:
    body = gql.execute(ORDER, {"id": "999999"}, token=sign())
    assert body == {"data": {"order": None}, "extensions": {"cost": 4}}


# --- orders: scope orders:read ------------------------------------------------------------------


def test_orders_without_the_scope_is_forbidden_and_nulls_data(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = gql.post("{ orders(first: 2) { totalCount } }", token=sign(PLAIN, []))
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None  # `orders` is a non-null root field
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["orders"]
    assert "orders:read" in error["message"]
    assert calls.total() == 0


def test_orders_anonymous_is_unauthenticated(gql: GraphQLClient) -> None:
    body = gql.execute("{ orders(first: 2) { totalCount } }")
    assert body["data"] is None
    assert codes(body) == ["UNAUTHENTICATED"]


def test_orders_with_the_scope(gql: GraphQLClient) -> None:
    orders = gql.data("{ orders(first: 3) { nodes { id } } }", token=sign("9", ["orders:read"]))
    assert len(orders["orders"]["nodes"]) == 3


# --- User.email: owner, or scope users:read:email -----------------------------------------------

EMAIL = "query($id: ID!) { user(id: $id) { id name email } }"


def test_a_customer_reads_their_own_email(gql: GraphQLClient) -> None:
    user = gql.data(EMAIL, {"id": PLAIN}, token=sign(PLAIN, []))["user"]
    assert user["email"] == DATA.users[int(PLAIN)]["email"]


def test_another_users_email_is_forbidden_but_the_name_is_kept(gql: GraphQLClient) -> None:
    body = gql.execute(EMAIL, {"id": OTHER}, token=sign(PLAIN, []))
    other = DATA.users[int(OTHER)]
    assert body["data"] == {"user": {"id": OTHER, "name": other["name"], "email": None}}
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["user", "email"]
    assert other["email"] not in str(body)


def test_scope_users_read_email_reads_any_email(gql: GraphQLClient) -> None:
    user = gql.data(EMAIL, {"id": OTHER}, token=sign("8", ["users:read:email"]))["user"]
    assert user["email"] == DATA.users[int(OTHER)]["email"]


def test_anonymous_email_is_unauthenticated(gql: GraphQLClient) -> None:
    body = gql.execute(EMAIL, {"id": OTHER})
    assert body["data"]["user"]["email"] is None
    assert body["data"]["user"]["name"] == DATA.users[int(OTHER)]["name"]
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["user", "email"]


def test_the_orders_read_scope_does_not_grant_emails(gql: GraphQLClient) -> None:
    body = gql.execute(EMAIL, {"id": OTHER}, token=sign("7", ["orders:read"]))
    assert body["data"]["user"]["email"] is None
    assert codes(body) == ["FORBIDDEN"]


# --- User.orders: owner, or scope orders:read ---------------------------------------------------

USER_ORDERS = "query($id: ID!) { user(id: $id) { id orders(first: 50) { nodes { id } } } }"


def test_a_customer_reads_their_own_orders(gql: GraphQLClient) -> None:
    user = gql.data(USER_ORDERS, {"id": PLAIN}, token=sign(PLAIN, []))["user"]
    ids = [int(n["id"]) for n in user["orders"]["nodes"]]
    assert sorted(ids) == sorted(DATA.order_ids_by_user[int(PLAIN)])


def test_another_users_orders_are_forbidden(gql: GraphQLClient) -> None:
    body = gql.execute(USER_ORDERS, {"id": OTHER}, token=sign(PLAIN, []))
    assert body["data"] == {"user": None}  # `orders` is non-null: the user object goes
    error = only_error(body)
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["user", "orders"]


def test_scope_orders_read_reads_any_users_orders(gql: GraphQLClient) -> None:
    user = gql.data(USER_ORDERS, {"id": OTHER}, token=sign("7", ["orders:read"]))["user"]
    ids = [int(n["id"]) for n in user["orders"]["nodes"]]
    assert sorted(ids) == sorted(DATA.order_ids_by_user[int(OTHER)])


# --- mutations need authentication --------------------------------------------------------------


@pytest.mark.parametrize("mutation", [PLACE_ORDER, ADD_REVIEW], ids=["placeOrder", "addReview"])
def test_anonymous_mutations_are_unauthenticated_and_write_nothing(
    mutation: str, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    body = gql.execute(mutation)
    assert body["data"] is None
    error = only_error(body)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert calls.total() == 0


# --- identity headers to upstreams ------------------------------------------------------------


def test_upstreams_receive_the_callers_identity_not_their_credentials(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    token = sign()
    gql.data('{ user(id: "5") { name } }', token=token)
    headers = calls.last_headers("users")
    assert headers["x-user-id"] == "1"
    assert " " in headers["x-user-scopes"]
    assert sorted(headers["x-user-scopes"].split(" ")) == sorted(ALL_SCOPES)
    assert "authorization" not in headers
    assert token not in str(headers)


def test_upstreams_receive_the_subject_of_the_token(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    gql.data('{ product(id: "3") { name } }', token=sign("42", ["orders:read"]))
    headers = calls.last_headers("catalog")
    assert headers["x-user-id"] == "42"
    assert headers["x-user-scopes"] == "orders:read"
    assert "authorization" not in headers


def test_upstreams_receive_no_identity_for_anonymous_callers(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    gql.data('{ user(id: "6") { name } }')
    assert calls.by_service()["users"] == 1
    headers = calls.last_headers("users")
    assert "x-user-id" not in headers
    assert "x-user-scopes" not in headers
    assert "authorization" not in headers


# --- asymmetric keys: RS256 and ES256 -----------------------------------------------------------

PRIVATE_KEYS = {"RS256": RSA_PEM.decode(), "ES256": ec_private_pem().decode()}


@pytest.fixture(scope="module", params=sorted(PRIVATE_KEYS))
def asymmetric(
    request: pytest.FixtureRequest,
    shop: RunningServices,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, GraphQLClient]]:
    """A gateway that verifies tokens with a public key file only."""
    algorithm: str = request.param
    public_key = tmp_path_factory.mktemp("keys") / "public.pem"
    public_key.write_bytes(public_pem_of(PRIVATE_KEYS[algorithm].encode()))
    auth = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwt": {"algorithm": algorithm, "public_key_file": str(public_key)},
    }
    with running_gateway(gateway_settings(shop.urls, auth=auth)) as url:
        client = GraphQLClient(url)
        yield algorithm, client
        client.close()


def test_a_token_signed_with_the_private_key_is_accepted(
    asymmetric: tuple[str, GraphQLClient],
) -> None:
    algorithm, client = asymmetric
    token = sign("5", ["orders:read"], secret=PRIVATE_KEYS[algorithm], algorithm=algorithm)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert client.data(ME, token=token)["me"] == {"id": "5"}


def test_algorithm_confusion_with_the_public_key_as_hmac_secret_is_refused(
    asymmetric: tuple[str, GraphQLClient], calls: UpstreamCalls
) -> None:
    algorithm, client = asymmetric
    token = hs256_by_hand(claims(), public_pem_of(PRIVATE_KEYS[algorithm].encode()))
    assert_refused(client.post(ME, token=token), token, calls)


def test_a_gateway_secret_token_is_refused_by_a_key_verifying_gateway(
    asymmetric: tuple[str, GraphQLClient], calls: UpstreamCalls
) -> None:
    _, client = asymmetric
    token = sign()
    assert_refused(client.post(ME, token=token), token, calls)


def test_a_token_of_another_key_pair_is_refused(
    asymmetric: tuple[str, GraphQLClient], calls: UpstreamCalls
) -> None:
    algorithm, client = asymmetric
    other = (rsa_private_pem() if algorithm == "RS256" else ec_private_pem()).decode()
    token = sign(secret=other, algorithm=algorithm)
    assert_refused(client.post(ME, token=token), token, calls)


def test_key_files_are_read_from_the_config(tmp_path: Path, shop: RunningServices) -> None:
    """A private key alone is enough: the gateway derives the public key to verify with."""
    private_key = tmp_path / "private.pem"
    private_key.write_text(PRIVATE_KEYS["ES256"])
    auth = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwt": {"algorithm": "ES256", "private_key_file": str(private_key)},
    }
    with running_gateway(gateway_settings(shop.urls, auth=auth)) as url:
        client = GraphQLClient(url)
        try:
            token = sign("4", [], secret=PRIVATE_KEYS["ES256"], algorithm="ES256")
            assert client.data(ME, token=token)["me"] == {"id": "4"}
            refused = client.post(ME, token=sign())
            assert refused.status_code == 401
        finally:
            client.close()
