"""Reading the gateway's JWT key files, so a wrong or unreadable key fails at start-up.

A key that only fails when the first token is signed would turn a config mistake into a
production 500; the config models call these loaders while validating instead. Messages name
what is wrong with the file, never its contents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# What each asymmetric algorithm needs: the key class, and a human name for messages.
_EXPECTED: dict[str, tuple[type[Any], type[Any], str]] = {
    "RS256": (rsa.RSAPrivateKey, rsa.RSAPublicKey, "an RSA key"),
    "ES256": (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey, "an EC key on curve P-256"),
}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a key file") from None
    except OSError as exc:
        raise ValueError(f"cannot read file ({exc.strerror or type(exc).__name__})") from None


def _check_kind(key: Any, algorithm: str, private: bool) -> None:
    private_cls, public_cls, wanted = _EXPECTED[algorithm]
    if not isinstance(key, private_cls if private else public_cls):
        raise ValueError(f"wrong kind of key; {algorithm} needs {wanted}")
    if algorithm == "ES256" and not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"wrong curve ({key.curve.name}); ES256 needs {wanted}")


def load_private_key(path: Path, algorithm: str) -> Any:
    """The private key object in the PEM file at `path`, checked against `algorithm`."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError("encrypted private keys are not supported; store it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM private key") from None
    _check_kind(key, algorithm, private=True)
    return key


def load_public_key(path: Path, algorithm: str) -> Any:
    """The public key object in the PEM file at `path`, checked against `algorithm`."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key") from None
    _check_kind(key, algorithm, private=False)
    return key


def public_pem(key: Any) -> bytes:
    """The SubjectPublicKeyInfo PEM of a public key, or of a private key's public half."""
    if hasattr(key, "public_key"):
        key = key.public_key()
    pem: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def private_pem(key: Any) -> bytes:
    """The unencrypted PKCS#8 PEM of a private key, as PyJWT accepts it for signing."""
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem
