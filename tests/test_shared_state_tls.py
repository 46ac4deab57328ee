"""Redis over TLS (`rediss://` with `redis.tls`), on a throwaway `redis-server` that speaks only
TLS and requires a client certificate: with the config's CA, certificate and key, two gateways
share tokens, refresh families, one budget, APQ and usage through it; without the client
certificate, or trusting another CA, Redis is unreachable and opaque tokens fail closed."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services import RunningServices
from tests.support import running_gateway
from tests.test_redis_cluster import free_port, shop_settings, two_replicas_act_as_one, wait_until
from tests.test_token_endpoints import Gateway


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def write_pki(directory: Path, label: str) -> dict[str, str]:
    """A CA and a server and a client certificate it signs (the server's for 127.0.0.1)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"bff test CA {label}"))
        .issuer_name(_name(f"bff test CA {label}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca_file": directory / f"{label}-ca.pem"}
    files["ca_file"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(f"bff test {role}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if role == "server":
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        files[f"{role}_cert"] = directory / f"{label}-{role}.pem"
        files[f"{role}_key"] = directory / f"{label}-{role}.key"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return {name: str(path) for name, path in files.items()}


def answers_tls(port: int, pki: dict[str, str]) -> bool:
    import redis

    try:
        client = redis.Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            ssl_ca_certs=pki["ca_file"],
            ssl_certfile=pki["client_cert"],
            ssl_keyfile=pki["client_key"],
            socket_timeout=0.5,
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, ssl.SSLError, OSError):
        return False


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A TLS-only redis-server requiring client certificates: its URL and the PKI files."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    work = tmp_path_factory.mktemp("tls-redis")
    pki = write_pki(work, "ours")
    port = free_port()
    argv = [
        server,
        *("--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
        *("--save", "", "--appendonly", "no", "--dir", str(work)),
        *("--tls-cert-file", pki["server_cert"], "--tls-key-file", pki["server_key"]),
        *("--tls-ca-cert-file", pki["ca_file"], "--tls-auth-clients", "yes"),
    ]
    with ExitStack() as stack:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(lambda: (process.kill(), process.wait(10)))
        wait_until(lambda: answers_tls(port, pki), "the TLS redis-server answers")
        yield f"rediss://127.0.0.1:{port}/0", pki


def tls_section(pki: dict[str, str], **override: str) -> dict[str, Any]:
    files = {
        "ca_file": pki["ca_file"],
        "cert_file": pki["client_cert"],
        "key_file": pki["client_key"],
    }
    return {**files, **override}


def test_two_gateways_act_as_one_over_tls(
    shop: RunningServices, tls_redis: tuple[str, dict[str, str]]
) -> None:
    url, pki = tls_redis
    two_replicas_act_as_one(shop_settings(shop, {"url": url, "tls": tls_section(pki)}))


def refused(settings_redis: dict[str, Any], shop: RunningServices) -> int:
    with running_gateway(shop_settings(shop, settings_redis)) as base:
        gateway = Gateway(base)
        try:
            return int(gateway.token().status_code)
        finally:
            gateway.close()


def test_without_the_client_certificate_redis_is_unreachable(
    shop: RunningServices, tls_redis: tuple[str, dict[str, str]]
) -> None:
    url, pki = tls_redis
    assert refused({"url": url, "tls": {"ca_file": pki["ca_file"]}}, shop) == 503


def test_a_server_signed_by_another_ca_is_not_trusted(
    shop: RunningServices, tls_redis: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, pki = tls_redis
    other = write_pki(tmp_path, "theirs")
    assert refused({"url": url, "tls": tls_section(pki, ca_file=other["ca_file"])}, shop) == 503
