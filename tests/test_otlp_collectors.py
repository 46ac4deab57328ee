"""OTLP to real collectors: headers (an API key), gzip, time-out, TLS and the OTEL_* variables.

The collectors here are real servers on loopback that decode what arrives: an OTLP/HTTP one
that answers 401 without the right key and records each request's Content-Encoding (plain or
over TLS with a private CA), and an OTLP/gRPC one that checks the call's metadata.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bff.cli import main as bff_main
from bff.config import ConfigError, TelemetryConfig, load_settings
from bff.telemetry import collector
from bff.telemetry.tracing import Tracing
from services import SERVICE_NAMES
from tests.tls_certs import Authority, Issued

KEY = "k3y-0f-the-c0llector-do-not-log"  # planted: it must never reach a log or a message
WAIT = 10.0


@dataclass
class Received:
    """What one export request brought: its headers of interest and its spans' names."""

    api_key: str | None
    encoding: str | None
    services: list[str] = field(default_factory=list)
    spans: list[str] = field(default_factory=list)


def decode(body: bytes) -> tuple[list[str], list[str]]:
    request = ExportTraceServiceRequest.FromString(body)
    services, names = [], []
    for resource_spans in request.resource_spans:
        for attribute in resource_spans.resource.attributes:
            if attribute.key == "service.name":
                services.append(attribute.value.string_value)
        for scope_spans in resource_spans.scope_spans:
            names.extend(span.name for span in scope_spans.spans)
    return services, names


class HttpCollector:
    """OTLP/HTTP on loopback: 401 unless `x-api-key` is `KEY`; TLS when given a certificate."""

    def __init__(
        self,
        certificate: Issued | None = None,
        client_ca: Path | None = None,
        delay: float = 0.0,
    ) -> None:
        """`delay`: seconds the collector waits before answering (a slow collector)."""
        self.received: list[Received] = []
        self.arrived = threading.Event()
        collector_ = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding")
                seen = Received(self.headers.get("x-api-key"), encoding)
                status = 401
                if seen.api_key == KEY and self.path == "/v1/traces":
                    status = 200
                    seen.services, seen.spans = decode(
                        gzip.decompress(body) if encoding == "gzip" else body
                    )
                collector_.received.append(seen)
                collector_.arrived.set()
                time.sleep(delay)
                reply = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
                with contextlib.suppress(OSError):  # a client that gave up waiting has gone
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate.cert, certificate.key)
            if client_ca is not None:  # mutual TLS: a client certificate of this CA or nothing
                context.load_verify_locations(client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpCollector:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """OTLP/gRPC on loopback: UNAUTHENTICATED unless the metadata carries `x-api-key: KEY`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.url = f"http://127.0.0.1:{port}"

    def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        seen = Received(metadata.get("x-api-key"), None)
        self.received.append(seen)
        if seen.api_key != KEY:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no valid key")
        seen.services, seen.spans = decode(request.SerializeToString())
        return ExportTraceServiceResponse()

    def __enter__(self) -> GrpcCollector:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


def telemetry_config(
    tmp_path: Path, telemetry: dict[str, Any], env: dict[str, str] | None = None
) -> TelemetryConfig:
    """`telemetry` as written in a bff.yaml, loaded with `env` as the environment."""
    path = tmp_path / "bff.yaml"
    path.write_text(yaml.safe_dump({"telemetry": telemetry}))
    return load_settings(path, env=env or {}).telemetry


def export_one(config: TelemetryConfig, name: str = "checkout") -> bool:
    """Start and end one span through tracing built from `config`; whether the flush worked."""
    tracing = Tracing.from_config(config)
    assert tracing is not None
    try:
        tracing.start(name).end()
        return tracing.flush(WAIT)
    finally:
        tracing.shutdown()


def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        collector.ENDPOINT,
        collector.HEADERS,
        collector.COMPRESSION,
        collector.TIMEOUT,
        collector.CERTIFICATE,
        collector.CLIENT_CERTIFICATE,
        collector.CLIENT_KEY,
        collector.SERVICE_NAME,
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_otel_env(monkeypatch)


@pytest.fixture
def http_collector() -> Iterator[HttpCollector]:
    with HttpCollector() as running:
        yield running


# --- OTLP/HTTP: headers and compression -------------------------------------------------------


def test_a_header_from_the_environment_and_gzip_reach_the_collector(
    tmp_path: Path, http_collector: HttpCollector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = telemetry_config(
        tmp_path,
        {
            "exporter": "otlp_http",
            "endpoint": http_collector.url,
            "headers": {"x-api-key": "${COLLECTOR_KEY}"},
        },
        env={"COLLECTOR_KEY": KEY},
    )
    assert KEY not in repr(config) and KEY not in str(config)
    assert export_one(config)
    (seen,) = http_collector.received
    assert (seen.api_key, seen.encoding, seen.spans) == (KEY, "gzip", ["checkout"])
    assert seen.services == ["bff"]
    assert KEY not in caplog.text


def test_a_wrong_key_is_a_logged_failure_that_never_quotes_the_key(
    tmp_path: Path, http_collector: HttpCollector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = KEY + "-but-wrong"
    config = telemetry_config(
        tmp_path,
        {"exporter": "otlp_http", "endpoint": http_collector.url, "headers": {"x-api-key": wrong}},
    )
    export_one(config)
    assert [r.api_key for r in http_collector.received] == [wrong]  # it was sent...
    assert "HTTP 401" in caplog.text  # ...refused, and the failure logged
    assert wrong not in caplog.text and KEY not in caplog.text


def test_compression_none_sends_plain_protobuf(
    tmp_path: Path, http_collector: HttpCollector
) -> None:
    config = telemetry_config(
        tmp_path,
        {
            "exporter": "otlp_http",
            "endpoint": http_collector.url,
            "headers": {"x-api-key": KEY},
            "compression": "none",
        },
    )
    assert export_one(config)
    (seen,) = http_collector.received
    assert (seen.encoding, seen.spans) == (None, ["checkout"])


def test_an_export_slower_than_the_timeout_fails_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bff.telemetry")
    with HttpCollector(delay=3.0) as slow:
        config = telemetry_config(
            tmp_path,
            {
                "exporter": "otlp_http",
                "endpoint": slow.url,
                "headers": {"x-api-key": KEY},
                "timeout": "200ms",
            },
        )
        export_one(config)
        assert slow.received  # it was sent, and given up on
    (line,) = [r.getMessage() for r in caplog.records if "trace export" in r.getMessage()]
    assert "timed out" in line and "1 spans dropped" in line


def test_the_otel_variables_apply_when_the_config_leaves_the_keys_unset(
    tmp_path: Path, http_collector: HttpCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(collector.ENDPOINT, http_collector.url + "/")
    monkeypatch.setenv(collector.HEADERS, f"x-api-key={KEY},x-team=shop%20front")
    monkeypatch.setenv(collector.COMPRESSION, "none")
    monkeypatch.setenv(collector.SERVICE_NAME, "shop-gateway")
    config = telemetry_config(tmp_path, {"exporter": "otlp_http"})
    assert export_one(config)
    (seen,) = http_collector.received
    assert (seen.api_key, seen.encoding, seen.services) == (KEY, None, ["shop-gateway"])


def test_keys_written_in_the_config_win_over_the_otel_variables(tmp_path: Path) -> None:
    env = {
        collector.ENDPOINT: "http://collector.example:4318",
        collector.HEADERS: "x-api-key=from-env",
        collector.COMPRESSION: "none",
        collector.TIMEOUT: "2500",
        collector.SERVICE_NAME: "from-env",
    }
    written = telemetry_config(
        tmp_path,
        {
            "endpoint": "http://127.0.0.1:4318",
            "headers": {"x-api-key": "from-file"},
            "compression": "gzip",
            "timeout": "3s",
            "service_name": "from-file",
        },
    )
    target = collector.resolve(written, env)
    assert (target.endpoint, dict(target.headers), target.compression, target.timeout) == (
        "http://127.0.0.1:4318",
        {"x-api-key": "from-file"},
        "gzip",
        3.0,
    )
    assert collector.service_name(written, env) == "from-file"
    unset = collector.resolve(TelemetryConfig(), env)
    assert (unset.endpoint, dict(unset.headers), unset.compression, unset.timeout) == (
        "http://collector.example:4318",
        {"x-api-key": "from-env"},
        "none",
        2.5,  # OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds
    )
    assert collector.service_name(TelemetryConfig(), env) == "from-env"


def test_defaults_without_config_or_environment() -> None:
    target = collector.resolve(TelemetryConfig(), {})
    assert (target.endpoint, dict(target.headers), target.compression, target.timeout) == (
        "http://127.0.0.1:4318",
        {},
        "gzip",
        10.0,
    )


# --- errors name the key or the variable, never a value ----------------------------------------


def test_a_missing_variable_in_a_header_is_a_config_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        telemetry_config(tmp_path, {"headers": {"x-api-key": "Bearer ${COLLECTOR_KEY}"}})
    assert str(caught.value).startswith(
        "telemetry.headers.x-api-key: environment variable COLLECTOR_KEY is not set"
    )


def test_a_header_value_with_a_line_break_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        telemetry_config(tmp_path, {"headers": {"x-api-key": f"{KEY}\r\nx-evil: 1"}})
    message = str(caught.value)
    assert message.startswith("telemetry.headers.x-api-key: a header value cannot hold")
    assert KEY not in message


def test_literal_dollar_brace_is_written_doubled(tmp_path: Path) -> None:
    config = telemetry_config(tmp_path, {"headers": {"x-note": "$${not-a-variable}"}})
    assert config.headers["x-note"].get_secret_value() == "${not-a-variable}"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (collector.HEADERS, f"x-api-key={KEY},{KEY}", "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is"),
        (collector.TIMEOUT, "soon", "OTEL_EXPORTER_OTLP_TIMEOUT: must be a positive number"),
        (collector.COMPRESSION, "brotli", "OTEL_EXPORTER_OTLP_COMPRESSION: must be gzip or none"),
        (collector.ENDPOINT, "collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT: not an http(s) URL"),
    ],
)
def test_a_bad_otel_variable_names_itself(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        collector.resolve(TelemetryConfig(), {variable: value})
    assert str(caught.value).startswith(message)
    assert KEY not in str(caught.value)


def test_check_config_never_prints_a_header_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    upstreams = {name: {"instances": [{"url": "http://127.0.0.1:9"}]} for name in SERVICE_NAMES}
    path = tmp_path / "bff.yaml"
    document = {"upstreams": upstreams, "telemetry": {"headers": {"x-api-key": KEY}}}
    path.write_text(yaml.safe_dump(document))
    assert bff_main(["check-config", str(path)]) == 0
    document["telemetry"]["headers"]["x-bad name"] = KEY  # type: ignore[index]
    path.write_text(yaml.safe_dump(document))
    assert bff_main(["check-config", str(path)]) == 1
    out = capsys.readouterr()
    assert "telemetry.headers.x-bad name: not a header name" in out.err
    assert KEY not in out.out + out.err + caplog.text


# --- TLS to an https:// collector -------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority, Issued]:
    directory = tmp_path_factory.mktemp("collector-pki")
    ca, other = Authority(directory, "collector-ca"), Authority(directory, "other-ca")
    return ca, other, ca.issue("collector", ips=("127.0.0.1",))


def test_an_https_collector_of_a_private_ca(
    tmp_path: Path, pki: tuple[Authority, Authority, Issued]
) -> None:
    ca, _, certificate = pki
    with HttpCollector(certificate) as running:
        config = telemetry_config(
            tmp_path,
            {
                "exporter": "otlp_http",
                "endpoint": running.url,
                "headers": {"x-api-key": KEY},
                "tls": {"ca_file": str(ca.ca_file)},
            },
        )
        assert export_one(config)
        assert [r.spans for r in running.received] == [["checkout"]]


def test_an_https_collector_that_demands_a_client_certificate(
    tmp_path: Path, pki: tuple[Authority, Authority, Issued]
) -> None:
    ca, _, certificate = pki
    client = ca.issue("gateway-client", client=True)
    with HttpCollector(certificate, client_ca=ca.ca_file) as running:
        tls = {"ca_file": str(ca.ca_file)}
        settings = {"exporter": "otlp_http", "endpoint": running.url, "headers": {"x-api-key": KEY}}
        export_one(telemetry_config(tmp_path, {**settings, "tls": tls}), "without")
        mutual = {**tls, "cert_file": str(client.cert), "key_file": str(client.key)}
        assert export_one(telemetry_config(tmp_path, {**settings, "tls": mutual}), "with")
        assert [r.spans for r in running.received] == [["with"]]


def test_the_otel_certificate_variable_names_the_ca(
    tmp_path: Path, pki: tuple[Authority, Authority, Issued], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, _, certificate = pki
    monkeypatch.setenv(collector.CERTIFICATE, str(ca.ca_file))
    with HttpCollector(certificate) as running:
        config = telemetry_config(
            tmp_path,
            {"exporter": "otlp_http", "endpoint": running.url, "headers": {"x-api-key": KEY}},
        )
        assert export_one(config)
        assert [r.spans for r in running.received] == [["checkout"]]


def test_a_collector_certificate_that_does_not_verify_is_never_sent_spans(
    tmp_path: Path, pki: tuple[Authority, Authority, Issued], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bff.telemetry")
    _, other, certificate = pki
    with HttpCollector(certificate) as running:
        config = telemetry_config(
            tmp_path,
            {
                "exporter": "otlp_http",
                "endpoint": running.url,
                "headers": {"x-api-key": KEY},
                "tls": {"ca_file": str(other.ca_file)},
            },
        )
        export_one(config)
        assert running.received == []
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text or "certificate verify" in caplog.text
    assert KEY not in caplog.text


def test_tls_with_a_plain_http_endpoint_is_refused(
    tmp_path: Path, pki: tuple[Authority, Authority, Issued]
) -> None:
    ca, _, _ = pki
    config = telemetry_config(
        tmp_path,
        {"endpoint": "http://127.0.0.1:4318", "tls": {"ca_file": str(ca.ca_file)}},
    )
    with pytest.raises(ConfigError) as caught:
        collector.resolve(config, {})
    assert str(caught.value).startswith("telemetry.tls: set, but the endpoint")


def test_a_missing_collector_ca_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        telemetry_config(tmp_path, {"tls": {"ca_file": "missing.pem"}})
    assert str(caught.value).startswith("telemetry.tls.ca_file: file not found")


# --- OTLP/gRPC: the headers as call metadata --------------------------------------------------


def test_grpc_export_carries_the_headers_as_metadata(tmp_path: Path) -> None:
    with GrpcCollector() as running:
        config = telemetry_config(
            tmp_path,
            {
                "exporter": "otlp_grpc",
                "endpoint": running.url,
                "headers": {"X-Api-Key": "${COLLECTOR_KEY}"},
                "timeout": "5s",
            },
            env={"COLLECTOR_KEY": KEY},
        )
        assert export_one(config, "grpc-checkout")
    (seen,) = running.received
    assert (seen.api_key, seen.spans) == (KEY, ["grpc-checkout"])


def test_check_config_reports_a_bad_otel_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstreams = {name: {"instances": [{"url": "http://127.0.0.1:9"}]} for name in SERVICE_NAMES}
    path = tmp_path / "bff.yaml"
    document = {"upstreams": upstreams, "telemetry": {"exporter": "otlp_http"}}
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setenv(collector.HEADERS, f"{KEY}")
    assert bff_main(["check-config", str(path)]) == 1
    out = capsys.readouterr()
    assert "OTEL_EXPORTER_OTLP_HEADERS: entry 1 is not name=value" in out.err
    assert KEY not in out.out + out.err


def test_a_grpc_export_refused_for_its_key_never_logs_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = KEY + "-but-wrong"
    with GrpcCollector() as running:
        config = telemetry_config(
            tmp_path,
            {"exporter": "otlp_grpc", "endpoint": running.url, "headers": {"x-api-key": wrong}},
        )
        export_one(config)
    assert [r.api_key for r in running.received] == [wrong]
    assert wrong not in caplog.text and KEY not in caplog.text
