"""The `redis` and `memcached` sections: where shared state lives, as it is deployed.

`redis` is the one Redis every store shares (tokens, revocations, rate limits, APQ, metering;
SPEC sections 10 and 11): a single server (`redis://`, `rediss://` for TLS, `unix://`), a Redis
Cluster (`cluster: true`, the URL names any node) or a Sentinel-managed master (`sentinel`).
`memcached` is only a token store (`auth.store: memcached`): rate limits, APQ and metering
need Redis's scripts and counters, so they stay on Redis or in memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bff.config.base import NonBlank, Problem, Section, problems_error
from bff.config.paths import TypeLabel

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def _host_port(value: str) -> str:
    found = _HOST_PORT.match(value.strip())
    if found is None or not 0 < int(found.group(2)) < 65536:
        raise ValueError("not host:port; write e.g. 127.0.0.1:26379")
    return value.strip()


HostPort = Annotated[str, AfterValidator(_host_port), TypeLabel("host:port")]
"""`host:port` of a server (an IPv6 address in brackets)."""


def _relative_to_config(value: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base_dir")
    if value is not None and base is not None and not value.is_absolute():
        return Path(base) / value
    return value


class RedisTLSConfig(Section):
    ca_file: Path | None = Field(
        None,
        description="PEM bundle of the CAs that sign the server's certificate (the system's "
        "when absent); relative to the config file.",
    )
    cert_file: Path | None = Field(
        None, description="PEM client certificate, for a server that requires one (mutual TLS)."
    )
    key_file: Path | None = Field(None, description="PEM private key of `cert_file`.")

    _paths = field_validator("ca_file", "cert_file", "key_file")(_relative_to_config)

    @model_validator(mode="after")
    def _files(self) -> RedisTLSConfig:
        problems: list[Problem] = []
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                problems.append(Problem((name,), "no such file", str(path)))
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            problems.append(Problem((missing,), "required with the other; set both or neither"))
        if problems:
            raise problems_error(problems)
        return self


class RedisSentinelConfig(Section):
    master: NonBlank = Field(description="Name of the master the sentinels watch.")
    nodes: list[HostPort] = Field(
        min_length=1, description="The sentinels, as `host:port`; any one that answers will do."
    )


class RedisConfig(Section):
    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis shared by replicas (token store, rate limits, APQ, metering): "
        "`redis://[user:password@]host:port/db`, `rediss://` for TLS, or `unix://`. With "
        "`cluster`, any node; with `sentinel`, only its user, password and database count. "
        "Unset, each process keeps that state in its own memory.",
        json_schema_extra={"doc_default": "*unset* (memory)"},
    )
    key_prefix: str = Field(
        "bff:",
        max_length=64,
        description="Prefix of every key the gateway writes, in every store, so several "
        "gateways (or tests) can share one Redis.",
    )
    username: str | None = Field(None, description="ACL user (Redis 6+); overrides one in the URL.")
    password: SecretStr | None = Field(
        None,
        description="Password of the ACL user (or of `requirepass`); overrides one in the "
        "URL; preferably through BFF_REDIS__PASSWORD.",
    )
    tls: RedisTLSConfig | None = Field(
        None, description="Certificates for a `rediss://` URL (TLS)."
    )
    cluster: bool = Field(
        False, description="The URL names a node of a Redis Cluster (keys spread over slots)."
    )
    sentinel: RedisSentinelConfig | None = Field(
        None, description="Find the master through Redis Sentinel instead of the URL's host."
    )

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a Redis URL; start it with redis://, rediss:// or unix://")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not contain { or }; the gateway puts hash tags after it")
        return value

    @model_validator(mode="after")
    def _one_topology(self) -> RedisConfig:
        problems: list[Problem] = []
        if self.tls is not None and not self.url.startswith("rediss://"):
            problems.append(Problem(("tls",), "needs a rediss:// url (TLS)"))
        if self.cluster and self.sentinel is not None:
            problems.append(Problem(("sentinel",), "cannot be combined with cluster: true"))
        if self.cluster and self.url.startswith("unix://"):
            problems.append(Problem(("cluster",), "needs a redis:// or rediss:// url"))
        db = self.url.split("://", 1)[1].partition("/")[2].partition("?")[0]
        if self.cluster and db not in ("", "0"):
            problems.append(Problem(("url",), "a Redis Cluster has database 0 only", db))
        if problems:
            raise problems_error(problems)
        return self


class MemcachedConfig(Section):
    servers: list[HostPort] = Field(
        default_factory=lambda: ["127.0.0.1:11211"],
        min_length=1,
        description="memcached servers of the token store (`auth.store: memcached`), as "
        "`host:port`; keys are spread over them by hash.",
    )
    key_prefix: str | None = Field(
        None,
        max_length=64,
        description="Prefix of every token key; `redis.key_prefix` when absent.",
    )

    @field_validator("key_prefix")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(c.isspace() or ord(c) < 33 for c in value):
            raise ValueError("must not contain spaces or control characters (memcached keys)")
        return value


__all__ = ["MemcachedConfig", "RedisConfig", "RedisSentinelConfig", "RedisTLSConfig"]
