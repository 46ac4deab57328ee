"""The `upstreams` section: one pool of instances per REST service, and how to call it."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from bff.config import tls
from bff.config.base import HttpUrl, NonBlank, Problem, Section, problems_error
from bff.config.units import ByteSize, Duration, format_duration


class InstanceConfig(Section):
    url: HttpUrl = Field(description="Base URL of the instance, e.g. `http://127.0.0.1:9101`.")
    weight: int = Field(1, ge=1, description="Share of traffic under the `weighted` balancer.")
    zone: str | None = Field(
        None, description="Zone of the instance; the gateway prefers its own `server.zone`."
    )


class TimeoutConfig(Section):
    connect: Duration = Field(0.5, gt=0, description="Time to open a connection, per attempt.")
    total: Duration = Field(2.0, gt=0, description="Budget for the whole call, retries included.")

    @model_validator(mode="after")
    def _connect_within_total(self) -> TimeoutConfig:
        if self.connect > self.total:
            raise problems_error(
                [
                    Problem(
                        ("connect",),
                        f"must not exceed total ({format_duration(self.total)}); the total "
                        "budget covers connecting",
                        repr(format_duration(self.connect)),
                    )
                ]
            )
        return self


class RetriesConfig(Section):
    attempts: int = Field(
        2,
        ge=1,
        description="Total tries of an idempotent request, the first included (1 = no retry).",
    )


class HealthCheckConfig(Section):
    path: str = Field(
        "/health", description="Path probed on each instance; a 2xx answer is a good probe."
    )
    interval: Duration = Field(2.0, gt=0, description="Time between two probes of an instance.")
    timeout: Duration = Field(0.5, gt=0, description="A probe slower than this has failed.")
    unhealthy_threshold: int = Field(
        2, ge=1, description="Failed probes in a row that take an instance out of the pool."
    )
    healthy_threshold: int = Field(
        2, ge=1, description="Good probes in a row that bring an instance back."
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'; e.g. /health")
        return value


class OutlierConfig(Section):
    consecutive_failures: int = Field(
        5,
        ge=1,
        description="Failed calls in a row (no connection, time-out or 5xx) that eject an "
        "instance (passive checking); at most half a pool is ejected at once.",
    )
    ejection: Duration = Field(
        30.0,
        gt=0,
        description="How long an ejected instance stays out the first time; each repeated "
        "ejection lasts this times the number of ejections (at most 10x).",
    )


class TlsFilesConfig(Section):
    """PEM files of a TLS client, read at start-up so a bad one fails with its key."""

    ca_file: Path | None = Field(
        None,
        description="PEM bundle of the CA(s) that sign the server's certificate (a private "
        "CA); only these are trusted then. Unset: the system's trusted CAs. Relative paths "
        "are relative to the config file.",
    )
    cert_file: Path | None = Field(
        None,
        description="PEM client certificate (mutual TLS), sent when the server asks for one; "
        "its key is in `key_file`, or in this file when `key_file` is unset.",
    )
    key_file: Path | None = Field(None, description="PEM private key of `cert_file`, unencrypted.")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return tls.resolve(value, (info.context or {}).get("base_dir"))

    @model_validator(mode="after")
    def _files_usable(self) -> TlsFilesConfig:
        try:
            self.context()
        except tls.TlsFileError as exc:
            raise problems_error([Problem((exc.key,), exc.reason, repr(str(exc.path)))]) from None
        return self

    @property
    def verifies(self) -> bool:
        return True

    def context(self) -> ssl.SSLContext:
        """A new client context from these files; raises `tls.TlsFileError`."""
        return tls.client_context(self.ca_file, self.cert_file, self.key_file, verify=self.verifies)


class UpstreamTlsConfig(TlsFilesConfig):
    server_name: NonBlank | None = Field(
        None,
        description="Host name sent in SNI and checked against the instances' certificates, "
        "instead of each URL's host (for instances addressed by IP, or a certificate issued "
        "to the service's name).",
    )
    verify: bool = Field(
        True,
        description="Check the instances' certificates and host names; a certificate that "
        "does not verify fails the call (`UPSTREAM_UNAVAILABLE`), never a fallback. `false` "
        "accepts any certificate, with a warning at start-up: for test benches only.",
    )

    @field_validator("server_name")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or ":" in value or any(c.isspace() for c in value)):
            raise ValueError("not a host name; write the name alone, e.g. users.internal")
        return value

    @property
    def verifies(self) -> bool:
        return self.verify


# Fields of an upstream answer that never reach the client whatever `response_headers` says:
# the framing and hop-by-hop fields are the gateway's own, and `Cache-Control` is computed.
NOT_PASSED = frozenset(
    {
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class UpstreamCacheConfig(Section):
    ttl: Duration | None = Field(
        None,
        gt=0,
        description="Freshness of this upstream's GET answers that carry no `Cache-Control` "
        "(for services that send no caching headers): they count as `max-age` of this long "
        "instead of `no-store`. An answer's own `Cache-Control` always wins.",
    )


class UpstreamConfig(Section):
    balancer: Literal["round_robin", "weighted", "least_requests", "peak_ewma"] = Field(
        "round_robin",
        description="How an instance is picked: `round_robin`, `weighted` (smooth weighted "
        "round robin), `least_requests` (power of two choices on requests in flight) or "
        "`peak_ewma` (power of two choices on latency times requests in flight, so a slow "
        "instance gets few calls).",
    )
    instances: list[InstanceConfig] = Field(
        min_length=1, description="The instances of the service; at least one."
    )
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig, description="Call timeouts.")
    retries: RetriesConfig = Field(
        default_factory=RetriesConfig,
        description="Retries of idempotent calls on another instance after a connect failure, "
        "a connection lost before the answer, or a 502/503/504 (a POST only when it never "
        "left); within `timeout.total` and a retry budget of 20 % of the calls in flight.",
    )
    health_check: HealthCheckConfig = Field(
        default_factory=HealthCheckConfig, description="Active health checking."
    )
    outlier: OutlierConfig = Field(
        default_factory=OutlierConfig, description="Passive outlier detection."
    )
    max_connections: int = Field(
        100, ge=1, description="Most connections open to the whole pool at once."
    )
    max_queue: int = Field(
        1000,
        ge=0,
        description="Requests that may wait for a connection while all `max_connections` are "
        "busy (each within `timeout.total`); past that, a request fails at once with "
        "`UPSTREAM_UNAVAILABLE`.",
    )
    required: bool = Field(
        True, description="Whether /readyz needs a healthy instance of this upstream."
    )
    max_response_body: ByteSize = Field(
        16 * 1024 * 1024,
        ge=1,
        description="Largest response body the gateway reads whole from this upstream; a "
        "larger one fails the call as a bad upstream response (streamed passthrough bodies "
        "are not held and not limited).",
    )
    dedupe: bool = Field(
        True,
        description="Share identical GET and HEAD calls in flight at the same time (same path, "
        "query and identity headers sent): made once, their answer (or failure) given to "
        "every caller, counted in `bff_upstream_shared_total`. Never for calls with a body.",
    )
    cache: UpstreamCacheConfig = Field(
        default_factory=UpstreamCacheConfig,
        description="How long this upstream's answers may be kept when they do not say.",
    )
    response_headers: list[str] = Field(
        default_factory=list,
        description="Headers of this upstream's answers that may reach the GraphQL client, "
        "e.g. `[Set-Cookie]` (default none); every `Set-Cookie` of every call is kept. "
        "Framing and hop-by-hop fields and `Cache-Control` (computed) cannot be named.",
    )
    tls: UpstreamTlsConfig | None = Field(
        None,
        description="TLS to the instances (their URLs must then be `https://`): a private CA, "
        "a client certificate, the name to verify. `https://` instances without this section "
        "are verified against the system's trusted CAs.",
    )

    @field_validator("response_headers")
    @classmethod
    def _passable_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in NOT_PASSED:
                raise ValueError(f"{name} is the gateway's own and cannot be passed")
        return names

    @model_validator(mode="after")
    def _distinct_instances(self) -> UpstreamConfig:
        first: dict[str, int] = {}
        problems: list[Problem] = []
        for index, instance in enumerate(self.instances):
            if instance.url in first:
                problems.append(
                    Problem(
                        ("instances", index, "url"),
                        f"duplicate instance (also instances[{first[instance.url]}])",
                        repr(instance.url),
                    )
                )
            first.setdefault(instance.url, index)
            if self.tls is not None and urlsplit(instance.url).scheme != "https":
                problems.append(
                    Problem(
                        ("instances", index, "url"),
                        "plain http:// while tls is set; use https:// (or remove tls)",
                        repr(instance.url),
                    )
                )
        if problems:
            raise problems_error(problems)
        return self
