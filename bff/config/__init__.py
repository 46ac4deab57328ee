"""Typed, frozen, validated configuration of the gateway (`bff.yaml` plus `BFF_*` overrides).

This package is part of the kernel: it imports nothing else of ours. `load_settings` is the one
entry point at start-up; it raises `ConfigError`, whose lines each name a key and what is wrong
with it. docs/config.md is generated from the models by `python -m bff.config.reference`.
"""

from bff.config.errors import ConfigError
from bff.config.loader import (
    NOT_YET_BUILT,
    inactive_sections,
    load_settings,
    settings_from_dict,
)
from bff.config.models import (
    AuthConfig,
    HealthCheckConfig,
    InstanceConfig,
    JwtConfig,
    LimitsConfig,
    LoggingConfig,
    MemcachedConfig,
    OutlierConfig,
    PersistedQueriesConfig,
    RateLimitRule,
    RateLimitsConfig,
    RedisConfig,
    RedisSentinelConfig,
    RedisTLSConfig,
    RetriesConfig,
    RouteConfig,
    RouteScopes,
    ServerConfig,
    Settings,
    TelemetryConfig,
    TimeoutConfig,
    TrustedIssuer,
    UpstreamConfig,
)
from bff.config.units import ByteSize, Duration, parse_duration, parse_size

__all__ = [
    "NOT_YET_BUILT",
    "AuthConfig",
    "ByteSize",
    "ConfigError",
    "Duration",
    "HealthCheckConfig",
    "InstanceConfig",
    "JwtConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MemcachedConfig",
    "OutlierConfig",
    "PersistedQueriesConfig",
    "RateLimitRule",
    "RateLimitsConfig",
    "RedisConfig",
    "RedisSentinelConfig",
    "RedisTLSConfig",
    "RetriesConfig",
    "RouteConfig",
    "RouteScopes",
    "ServerConfig",
    "Settings",
    "TelemetryConfig",
    "TimeoutConfig",
    "TrustedIssuer",
    "UpstreamConfig",
    "inactive_sections",
    "load_settings",
    "parse_duration",
    "parse_size",
    "settings_from_dict",
]
