"""`Collector`: where and how spans are exported, from `telemetry.*` and the OTEL_* environment.

The standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `_HEADERS`, `_COMPRESSION`, `_TIMEOUT`,
`_CERTIFICATE`, `_CLIENT_CERTIFICATE`, `_CLIENT_KEY`, and `OTEL_SERVICE_NAME`) apply only to
the keys the config leaves unset: a key written in `bff.yaml` (or by a `BFF_` variable) always
wins. Resolved once, when the exporter is built; a bad variable stops the start with a message
naming it, never quoting a header value (they hold API keys).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bff.config import ConfigError, TelemetryConfig
from bff.config.tls import TlsFileError, client_context

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"
TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"  # milliseconds, as the OpenTelemetry specification says
CERTIFICATE = "OTEL_EXPORTER_OTLP_CERTIFICATE"
CLIENT_CERTIFICATE = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
CLIENT_KEY = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
SERVICE_NAME = "OTEL_SERVICE_NAME"

# the config key of each TLS file, and the variable that stands in for it
_TLS_SOURCES = {
    "ca_file": CERTIFICATE,
    "cert_file": CLIENT_CERTIFICATE,
    "key_file": CLIENT_KEY,
}


@dataclass(frozen=True)
class Collector:
    endpoint: str  # base URL, no trailing slash
    headers: Mapping[str, str] = field(repr=False)  # values are secrets: never in a repr
    compression: str  # "gzip" | "none"
    timeout: float  # seconds per export
    tls_files: Mapping[str, Path] = field(default_factory=dict)  # ca_file, cert_file, key_file
    tls_sources: Mapping[str, str] = field(default_factory=dict)  # key -> where it was set

    @property
    def https(self) -> bool:
        return self.endpoint.startswith("https://")

    def ssl_context(self) -> ssl.SSLContext:
        """The client context for an `https://` endpoint (the system's CAs by default)."""
        files = self.tls_files
        try:
            return client_context(
                files.get("ca_file"), files.get("cert_file"), files.get("key_file")
            )
        except TlsFileError as exc:
            where = self.tls_sources.get(exc.key, f"telemetry.tls.{exc.key}")
            raise ConfigError([f"{where}: {exc.reason} (got {str(exc.path)!r})"]) from None

    def pem(self, key: str) -> bytes | None:
        """The bytes of TLS file `key` (gRPC credentials take PEM bytes, not paths)."""
        path = self.tls_files.get(key)
        if path is None:
            return None
        self.ssl_context()  # the same checks, and messages, as for HTTP
        return path.read_bytes()


def resolve(config: TelemetryConfig, env: Mapping[str, str]) -> Collector:
    """The collector settings: each key from the config when written there, else from its
    OTEL_* variable when set, else the config's default. Raises `ConfigError`."""
    written = config.model_fields_set

    def unset(key: str, variable: str) -> bool:
        return key not in written and bool(env.get(variable, "").strip())

    endpoint = str(config.endpoint).rstrip("/")
    if unset("endpoint", ENDPOINT):
        endpoint = _endpoint(env[ENDPOINT])
    headers = {name: value.get_secret_value() for name, value in config.headers.items()}
    if unset("headers", HEADERS):
        headers = parse_headers(env[HEADERS])
    compression: str = config.compression
    if unset("compression", COMPRESSION):
        compression = env[COMPRESSION].strip().lower()
        if compression not in ("gzip", "none"):
            raise ConfigError([f"{COMPRESSION}: must be gzip or none"])
    timeout = config.timeout
    if unset("timeout", TIMEOUT):
        timeout = _timeout(env[TIMEOUT])
    files: dict[str, Path] = {}
    sources: dict[str, str] = {}
    tls = config.tls
    if tls is not None and endpoint.startswith("http://"):
        raise ConfigError(
            [f"telemetry.tls: set, but the endpoint {endpoint} is plain http://; use https://"]
        )
    for key, variable in _TLS_SOURCES.items():
        path: Path | None = getattr(tls, key) if tls is not None else None
        if path is None and env.get(variable, "").strip():
            path = Path(env[variable].strip())
            sources[key] = variable
        if path is not None:
            files[key] = path
    return Collector(endpoint, headers, compression, timeout, files, sources)


def check_exporter(config: TelemetryConfig, env: Mapping[str, str]) -> None:
    """Resolve what an OTLP exporter would (`bff check-config`, and before `bff serve` builds
    the app), so a bad OTEL_* variable or TLS file is a config error, not a traceback."""
    if config.exporter in ("otlp_http", "otlp_grpc"):
        target = resolve(config, env)
        if target.https:
            target.ssl_context()


def service_name(config: TelemetryConfig, env: Mapping[str, str]) -> str:
    """`telemetry.service_name`, or `OTEL_SERVICE_NAME` when the config leaves it unset."""
    variable = env.get(SERVICE_NAME, "").strip()
    if "service_name" in config.model_fields_set or not variable:
        return config.service_name
    return variable


def parse_headers(text: str) -> dict[str, str]:
    """`name=value,name2=value2` (values percent-encoded) as the OTel specification writes
    headers in `OTEL_EXPORTER_OTLP_HEADERS`; an entry that is not `name=value` is an error
    naming its position, not its text."""
    headers: dict[str, str] = {}
    for index, entry in enumerate(text.split(","), 1):
        if not entry.strip():
            continue
        name, equals, value = entry.partition("=")
        name = unquote(name).strip()
        if not equals or not name or any(c in name for c in " \t\r\n:"):
            raise ConfigError([f"{HEADERS}: entry {index} is not name=value"])
        value = unquote(value).strip()
        if any(c in value for c in "\r\n\0"):
            raise ConfigError([f"{HEADERS}: the value of entry {index} holds a line break"])
        headers[name] = value
    return headers


def _endpoint(text: str) -> str:
    value = text.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError([f"{ENDPOINT}: not an http(s) URL; e.g. http://127.0.0.1:4318"])
    return value


def _timeout(text: str) -> float:
    try:
        milliseconds = float(text)
    except ValueError:
        milliseconds = -1.0
    if not milliseconds > 0 or milliseconds == float("inf"):
        raise ConfigError([f"{TIMEOUT}: must be a positive number of milliseconds, e.g. 10000"])
    return milliseconds / 1000
