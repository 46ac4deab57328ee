"""The gateway's own signing keys: RS256/ES256 with `kid`, the JWKS it publishes, and a
rotation to a `next` key without a flag day (SPEC sections 4 and 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from bff.config import ConfigError, settings_from_dict
from bff.config.loader import inactive_sections
from services import RunningServices
from tests.auth_support import auth_gateway_settings
from tests.support import AUDIENCE, ISSUER, GraphQLClient, running_gateway
from tests.test_auth import ec_private_pem, rsa_private_pem

ME = "{ me { id } }"


def key_file(tmp_path: Path, name: str, pem: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(pem)
    return str(path)


def login(url: str) -> str:
    response = httpx.post(
        f"{url}/auth/token",
        json={"username": "user2", "password": "password2"},
        trust_env=False,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def jwks(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/.well-known/jwks.json", trust_env=False, timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def verify_with_jwks(token: str, document: dict[str, Any]) -> dict[str, Any]:
    """What any relying party does: pick the key by `kid` from the JWKS and check everything."""
    kid = jwt.get_unverified_header(token)["kid"]
    [jwk] = [k for k in document["keys"] if k["kid"] == kid]
    key = jwt.PyJWK(jwk)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=[jwk["alg"]], audience=AUDIENCE, issuer=ISSUER
    )
    return claims


@pytest.mark.parametrize(
    ("algorithm", "make_key"), [("RS256", rsa_private_pem), ("ES256", ec_private_pem)]
)
def test_issued_tokens_verify_with_the_published_jwks(
    shop: RunningServices, tmp_path: Path, algorithm: str, make_key: Any
) -> None:
    private = key_file(tmp_path, "key.pem", make_key())
    settings = auth_gateway_settings(
        shop.urls, jwt={"algorithm": algorithm, "private_key_file": private}
    )
    with running_gateway(settings) as url:
        token = login(url)
        document = jwks(url)
        client = GraphQLClient(url)
        assert client.data(ME, token=token) == {"me": {"id": "2"}}
        client.close()
    [published] = document["keys"]
    assert published["alg"] == algorithm and published["use"] == "sig"
    assert "d" not in published  # the public half only
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = verify_with_jwks(token, document)
    assert claims["sub"] == "2"
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "scope"} <= set(claims)


def test_an_hs256_gateway_publishes_no_key(shop: RunningServices) -> None:
    with running_gateway(auth_gateway_settings(shop.urls)) as url:
        assert jwks(url) == {"keys": []}


def test_rotation_to_a_next_key(shop: RunningServices, tmp_path: Path) -> None:
    old_pem, new_pem = rsa_private_pem(), ec_private_pem()
    old = {"algorithm": "RS256", "private_key_file": key_file(tmp_path, "old.pem", old_pem)}
    new = {"algorithm": "ES256", "private_key_file": key_file(tmp_path, "new.pem", new_pem)}

    with running_gateway(auth_gateway_settings(shop.urls, jwt=old)) as url:
        old_token = login(url)
        old_kid = jwks(url)["keys"][0]["kid"]

    # step 1: the next key signs, the old one still verifies; both are published
    with running_gateway(auth_gateway_settings(shop.urls, jwt={**old, "next": new})) as url:
        document = jwks(url)
        new_token = login(url)
        client = GraphQLClient(url)
        assert client.data(ME, token=old_token) == {"me": {"id": "2"}}
        assert client.data(ME, token=new_token) == {"me": {"id": "2"}}
        client.close()
    kids = [k["kid"] for k in document["keys"]]
    assert len(kids) == 2 and old_kid in kids
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    assert verify_with_jwks(old_token, document)["sub"] == "2"
    assert verify_with_jwks(new_token, document)["sub"] == "2"

    # step 2: once the old tokens have expired, the next key becomes the only one
    with running_gateway(auth_gateway_settings(shop.urls, jwt=new)) as url:
        client = GraphQLClient(url)
        assert client.data(ME, token=new_token) == {"me": {"id": "2"}}
        assert client.post(ME, token=old_token).status_code == 401
        client.close()


def test_rotation_of_hs256_secrets(shop: RunningServices) -> None:
    old = {"algorithm": "HS256", "secret": "old-secret-0123456789-abcdefghijkl"}
    new = {"algorithm": "HS256", "secret": "new-secret-0123456789-abcdefghijkl"}
    with running_gateway(auth_gateway_settings(shop.urls, jwt=old)) as url:
        old_token = login(url)
    with running_gateway(auth_gateway_settings(shop.urls, jwt={**old, "next": new})) as url:
        new_token = login(url)
        client = GraphQLClient(url)
        assert client.data(ME, token=old_token) == {"me": {"id": "2"}}
        assert client.data(ME, token=new_token) == {"me": {"id": "2"}}
        client.close()
    jwt.decode(new_token, new["secret"], algorithms=["HS256"], audience=AUDIENCE)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(new_token, old["secret"], algorithms=["HS256"], audience=AUDIENCE)


def config_errors(auth: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"auth": auth})
    return info.value.errors


def test_a_next_key_is_validated_like_the_main_one(tmp_path: Path) -> None:
    main = {"algorithm": "HS256", "secret": "s" * 32}
    [error] = config_errors({"jwt": {**main, "next": {"algorithm": "HS256"}}})
    assert error.startswith("auth.jwt.next.secret:")
    missing = str(tmp_path / "missing.pem")
    [error] = config_errors(
        {"jwt": {**main, "next": {"algorithm": "ES256", "private_key_file": missing}}}
    )
    assert error.startswith("auth.jwt.next.private_key_file:") and "not found" in error


def test_new_auth_keys_are_active_not_warned_about() -> None:
    settings = settings_from_dict(
        {
            "auth": {
                "token_format": "opaque",
                "store": "redis",
                "trusted_issuers": [
                    {"issuer": "https://idp", "jwks_url": "http://127.0.0.1:1/j", "audience": "a"}
                ],
            },
            "redis": {"url": "redis://127.0.0.1:6390/1", "key_prefix": "x:"},
        }
    )
    assert inactive_sections(settings) == []
