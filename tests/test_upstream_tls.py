"""TLS to upstreams: a private CA, SNI/`server_name`, mutual TLS, and never a silent downgrade.

Every certificate is made at test time (`tests.tls_certs`); the upstreams are the sample users
service served by uvicorn over TLS, one of them demanding a client certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bff.app import create_app
from bff.config import ConfigError, settings_from_dict
from bff.config.loader import load_settings
from bff.errors import UpstreamUnavailable
from bff.serving import BackgroundServer
from bff.telemetry.hub import Telemetry
from bff.upstream.http11 import TlsFailed
from bff.upstream.registry import Upstreams
from schema import schema
from services import RunningServices
from services.common import ServiceOptions
from services.registry import APP_FACTORIES
from tests.support import AUDIENCE, ISSUER, SECRET, GraphQLClient
from tests.tls_certs import Authority, BackgroundTlsServer, Issued

SERVICE_NAME = "users.internal"  # the only name on the users service's certificate


@dataclass(frozen=True)
class Pki:
    ca: Authority
    other_ca: Authority
    client: Issued  # signed by `ca`
    stranger: Issued  # a client certificate signed by `other_ca`


@dataclass(frozen=True)
class Upstreams_:
    tls: str  # serves a certificate for SERVICE_NAME, signed by the CA
    mtls: str  # the same, and demands a client certificate signed by the CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Authority(directory, "ca"), Authority(directory, "other-ca")
    return Pki(
        ca,
        other,
        ca.issue("gateway", client=True),
        other.issue("stranger", client=True),
    )


@pytest.fixture(scope="module")
def servers(pki: Pki) -> Iterator[Upstreams_]:
    app = APP_FACTORIES["users"](ServiceOptions())
    certificate = pki.ca.issue("users", dns=(SERVICE_NAME,))
    with (
        BackgroundTlsServer(app, certificate) as tls,
        BackgroundTlsServer(app, certificate, client_ca=pki.ca.ca_file) as mtls,
    ):
        yield Upstreams_(tls.url, mtls.url)


def users_upstream(url: str, tls: dict[str, Any] | None) -> Upstreams:
    upstream: dict[str, Any] = {"instances": [{"url": url}], "retries": {"attempts": 1}}
    if tls is not None:
        upstream["tls"] = tls
    return Upstreams.from_settings(settings_from_dict({"upstreams": {"users": upstream}}))


def call(upstreams: Upstreams) -> tuple[int, Any, bool]:
    """GET /users/1 through the pool, and whether a health probe of the instance passes."""

    async def go() -> tuple[int, Any, bool]:
        pool = upstreams["users"]
        try:
            probed = await pool.probe(pool.instances[0], "/health", timeout=5)
            response = await pool.request("GET", "/users/1")
            return response.status, response.json(), probed
        finally:
            await upstreams.aclose()

    return asyncio.run(go())


def failure(upstreams: Upstreams) -> tuple[UpstreamUnavailable, bool]:
    """The error of GET /users/1 (it must fail as unavailable), and the probe's verdict."""

    async def go() -> tuple[UpstreamUnavailable, bool]:
        pool = upstreams["users"]
        try:
            probed = await pool.probe(pool.instances[0], "/health", timeout=5)
            with pytest.raises(UpstreamUnavailable) as caught:
                await pool.request("GET", "/users/1")
            return caught.value, probed
        finally:
            await upstreams.aclose()

    return asyncio.run(go())


def files(issued: Issued) -> dict[str, str]:
    return {"cert_file": str(issued.cert), "key_file": str(issued.key)}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- a private CA and the name to verify ------------------------------------------------------


def test_a_certificate_of_the_private_ca_verifies(pki: Pki, servers: Upstreams_) -> None:
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": SERVICE_NAME}
    status, body, probed = call(users_upstream(servers.tls, tls))
    assert (status, body["id"], probed) == (200, 1, True)


def test_a_certificate_of_another_ca_fails_the_call_with_the_reason_logged(
    pki: Pki, servers: Upstreams_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bff.upstream")
    tls = {"ca_file": str(pki.other_ca.ca_file), "server_name": SERVICE_NAME}
    error, probed = failure(users_upstream(servers.tls, tls))
    assert error.code == "UPSTREAM_UNAVAILABLE"
    assert "certificate verify failed" in str(error.__cause__)
    assert probed is False  # health checks go through the same TLS
    (line, *_) = [m for m in warnings(caplog) if "TLS handshake failed" in m]
    assert "upstream users" in line and servers.tls in line
    assert "unable to get local issuer certificate" in line


def test_the_system_cas_do_not_trust_a_private_ca(servers: Upstreams_) -> None:
    """An `https://` instance without a `tls` section is still verified, never trusted blindly."""
    error, probed = failure(users_upstream(servers.tls, None))
    assert "certificate verify failed" in str(error.__cause__) and probed is False


def test_without_server_name_the_url_host_must_be_on_the_certificate(
    pki: Pki, servers: Upstreams_
) -> None:
    error, _ = failure(users_upstream(servers.tls, {"ca_file": str(pki.ca.ca_file)}))
    assert "IP address mismatch" in str(error.__cause__)


def test_a_server_name_the_certificate_does_not_carry_fails(pki: Pki, servers: Upstreams_) -> None:
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": "orders.internal"}
    error, _ = failure(users_upstream(servers.tls, tls))
    assert "Hostname mismatch" in str(error.__cause__)


# --- mutual TLS -------------------------------------------------------------------------------


def test_mtls_with_the_client_certificate(pki: Pki, servers: Upstreams_) -> None:
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": SERVICE_NAME, **files(pki.client)}
    status, body, probed = call(users_upstream(servers.mtls, tls))
    assert (status, body["id"], probed) == (200, 1, True)


def test_mtls_without_a_client_certificate_fails_with_a_hint(
    pki: Pki, servers: Upstreams_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bff.upstream")
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": SERVICE_NAME}
    error, probed = failure(users_upstream(servers.mtls, tls))
    assert error.code == "UPSTREAM_UNAVAILABLE" and probed is False
    assert any("client certificate" in m and "upstream users" in m for m in warnings(caplog))


def test_mtls_with_a_client_certificate_of_another_ca_fails(pki: Pki, servers: Upstreams_) -> None:
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": SERVICE_NAME, **files(pki.stranger)}
    error, probed = failure(users_upstream(servers.mtls, tls))
    assert error.code == "UPSTREAM_UNAVAILABLE" and probed is False


# --- verify: false ----------------------------------------------------------------------------


def test_verify_false_accepts_any_certificate_with_one_warning_at_start(
    servers: Upstreams_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bff.upstream")
    upstreams = users_upstream(servers.tls, {"verify": False})
    started = [m for m in warnings(caplog) if "tls.verify is false" in m]
    assert len(started) == 1 and started[0].startswith("upstream users:")
    status, _, probed = call(upstreams)
    assert (status, probed) == (200, True)
    assert [m for m in warnings(caplog) if "tls.verify is false" in m] == started


def test_verify_true_warns_nothing(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "bff.upstream")
    users_upstream("https://127.0.0.1:9", {"ca_file": str(pki.ca.ca_file)})
    assert warnings(caplog) == []


# --- config errors name the key ---------------------------------------------------------------


def config_error(tmp_path: Path, tls: dict[str, Any], url: str = "https://127.0.0.1:9") -> str:
    document = {"upstreams": {"users": {"instances": [{"url": url}], "tls": tls}}}
    path = tmp_path / "bff.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    return str(caught.value)


def test_a_missing_ca_file_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"ca_file": "no-such-ca.pem"})
    assert message.startswith("upstreams.users.tls.ca_file: file not found")
    assert str(tmp_path / "no-such-ca.pem") in message  # relative to the config file


def test_a_file_that_is_not_a_certificate_names_its_key(tmp_path: Path, pki: Pki) -> None:
    message = config_error(tmp_path, {"ca_file": str(pki.client.key)})
    assert message.startswith("upstreams.users.tls.ca_file: not a PEM certificate")
    message = config_error(tmp_path, {"cert_file": str(pki.client.key)})
    assert message.startswith("upstreams.users.tls.cert_file: not a PEM certificate")


def test_a_key_of_another_certificate_names_key_file(tmp_path: Path, pki: Pki) -> None:
    tls = {"cert_file": str(pki.client.cert), "key_file": str(pki.stranger.key)}
    assert config_error(tmp_path, tls).startswith(
        "upstreams.users.tls.key_file: does not match cert_file"
    )


def test_a_key_file_needs_a_cert_file(tmp_path: Path, pki: Pki) -> None:
    message = config_error(tmp_path, {"key_file": str(pki.client.key)})
    assert message.startswith("upstreams.users.tls.key_file: needs cert_file")


def test_a_key_file_never_shows_its_contents(tmp_path: Path, pki: Pki) -> None:
    message = config_error(tmp_path, {"cert_file": str(pki.client.cert), "key_file": "x"})
    assert "PRIVATE KEY" not in message and "key_file: file not found" in message


def test_tls_with_a_plain_http_instance_is_a_config_error(tmp_path: Path, pki: Pki) -> None:
    message = config_error(tmp_path, {"ca_file": str(pki.ca.ca_file)}, url="http://127.0.0.1:9")
    assert message.startswith("upstreams.users.instances[0].url: plain http:// while tls is set")


def test_a_server_name_must_be_a_host_name(tmp_path: Path) -> None:
    message = config_error(tmp_path, {"server_name": "https://users.internal"})
    assert message.startswith("upstreams.users.tls.server_name: not a host name")


# --- through the gateway: GraphQL, passthrough, readiness, the client span ---------------------


def tls_gateway(
    shop: RunningServices, url: str, tls: dict[str, Any]
) -> tuple[BackgroundServer, Telemetry, InMemorySpanExporter]:
    upstreams: dict[str, Any] = {
        name: {"instances": [{"url": u} for u in urls]} for name, urls in shop.urls.items()
    }
    upstreams["users"] = {"instances": [{"url": url}], "tls": tls, "retries": {"attempts": 1}}
    settings = settings_from_dict(
        {
            "upstreams": upstreams,
            "routes": [{"name": "people", "upstream": "users", "auth": "public"}],
            "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwt": {"secret": SECRET}},
            "rate_limits": {"enabled": False},
        }
    )
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(settings, schema._schema, exporter=exporter)
    return BackgroundServer(create_app(settings, telemetry=telemetry)), telemetry, exporter


USER = '{ user(id: "1") { id name } }'


def test_graphql_passthrough_and_health_checks_over_tls(
    shop: RunningServices, pki: Pki, servers: Upstreams_
) -> None:
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": SERVICE_NAME, **files(pki.client)}
    server, _, _ = tls_gateway(shop, servers.mtls, tls)
    with server, httpx.Client(base_url=server.url, timeout=10, trust_env=False) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["upstreams"]["users"]["usable"] == 1  # the probe passed over mTLS
        client = GraphQLClient(server.url)
        assert client.data(USER)["user"] == {"id": "1", "name": "John Allen"}
        client.close()
        relayed = http.get("/api/people/users/1")  # streamed passthrough
        assert relayed.status_code == 200 and relayed.json()["id"] == 1


def test_a_certificate_that_does_not_verify_is_in_the_client_span(
    shop: RunningServices, pki: Pki, servers: Upstreams_, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bff.upstream")
    tls = {"ca_file": str(pki.other_ca.ca_file), "server_name": SERVICE_NAME}
    server, telemetry, exporter = tls_gateway(shop, servers.tls, tls)
    with server, httpx.Client(base_url=server.url, timeout=10, trust_env=False) as http:
        assert http.get("/readyz").status_code == 503  # the start-up probe failed
        client = GraphQLClient(server.url)
        body = client.execute(USER)
        client.close()
        assert body["data"] == {"user": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_UNAVAILABLE"]
        assert http.get("/api/people/users/1").status_code == 502
        assert telemetry.tracing is not None and telemetry.tracing.flush()
    clients = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(clients) == 2  # the GraphQL call and the passthrough, never a plain-text retry
    for span in clients:
        assert span.attributes is not None and span.attributes["error.type"] == "TlsFailed"
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description is not None
        assert "unable to get local issuer certificate" in span.status.description
    assert any("TLS handshake failed" in m for m in warnings(caplog))


class AlertingTlsServer:
    """A bare TLS server (OpenSSL's handshake, as nginx or Envoy do it) that demands a client
    certificate and, without one, sends the TLS alert saying so before it closes."""

    def __init__(self, certificate: Issued, client_ca: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate.cert, certificate.key)
        self.context.load_verify_locations(client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn, contextlib.suppress(OSError):
                self.context.wrap_socket(conn, server_side=True).recv(1)

    def __enter__(self) -> AlertingTlsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


def test_a_refusal_alert_of_the_server_is_a_tls_failure_with_its_reason(pki: Pki) -> None:
    """Under uvloop (the gateway's loop) the alert reaches the connection as an SSL error."""
    certificate = pki.ca.issue("alerting", dns=(SERVICE_NAME,))
    tls = {"ca_file": str(pki.ca.ca_file), "server_name": SERVICE_NAME}
    with AlertingTlsServer(certificate, pki.ca.ca_file) as server:
        upstreams = users_upstream(server.url, tls)

        async def go() -> BaseException | None:
            try:
                with pytest.raises(UpstreamUnavailable) as caught:
                    await upstreams["users"].request("GET", "/users/1")
                return caught.value.__cause__
            finally:
                await upstreams.aclose()

        cause = uvloop.run(go())
    assert isinstance(cause, TlsFailed)
    assert "certificate required" in str(cause)
