"""The gateway's own signing keys: which one signs, which ones verify, what JWKS publishes.

Every key has a `kid` that is stable across restarts and replicas: the RFC 7638 thumbprint of
a public key, or for an HS256 secret a keyed digest of it (a plain hash of a weak secret would
help guess it; a token signed with it already allows that much, nothing more). With a `next`
key configured, new tokens are signed with it and tokens of the main key still verify until
they expire: a rotation without a flag day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bff.config import keys
from bff.config.auth_models import JwtConfig, JwtKeyConfig


@dataclass(frozen=True, slots=True)
class GatewayKey:
    kid: str
    algorithm: str
    verification_key: str | bytes
    signing_key: str | bytes | None
    public_jwk: dict[str, Any] | None  # None for a shared secret: it is never published


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: sha256 over the required members in lexical order, no whitespace."""
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(public_key: Any, algorithm: str) -> dict[str, Any]:
    codec = RSAAlgorithm if algorithm.startswith("RS") else ECAlgorithm
    jwk: dict[str, Any] = dict(codec.to_jwk(public_key, as_dict=True))
    jwk["kid"] = thumbprint(jwk)
    jwk["alg"] = algorithm
    jwk["use"] = "sig"
    return jwk


def gateway_key(config: JwtKeyConfig) -> GatewayKey | None:
    """The key `config` describes, or None when it has none (an unconfigured `jwt` section)."""
    if config.algorithm == "HS256":
        if config.secret is None:
            return None
        secret = config.secret.get_secret_value()
        kid = "hs-" + b64url(hmac.digest(secret.encode(), b"bff key id", "sha256")[:9])
        return GatewayKey(kid, "HS256", secret, secret, None)
    if config.public_key_file is not None:
        public = keys.load_public_key(config.public_key_file, config.algorithm)
    else:
        assert config.private_key_file is not None  # the config requires one of the two
        public = keys.load_private_key(config.private_key_file, config.algorithm).public_key()
    jwk = public_jwk(public, config.algorithm)
    return GatewayKey(
        jwk["kid"], config.algorithm, keys.public_pem(public), config.signing_key(), jwk
    )


@dataclass(frozen=True, slots=True)
class Keyring:
    """`signing`: the key new tokens get (the next one when set); `verifying`: all of them."""

    signing: GatewayKey | None
    verifying: tuple[GatewayKey, ...]

    @classmethod
    def from_config(cls, config: JwtConfig) -> Keyring:
        found = [gateway_key(config)]
        if config.next is not None:
            found.append(gateway_key(config.next))
        verifying = tuple(k for k in found if k is not None)
        signers = [k for k in verifying if k.signing_key is not None]
        return cls(signers[-1] if signers else None, verifying)

    def jwks(self) -> dict[str, Any]:
        """The `/.well-known/jwks.json` document: the public keys, never a shared secret."""
        return {"keys": [k.public_jwk for k in self.verifying if k.public_jwk is not None]}
