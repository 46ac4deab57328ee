"""Limits that protect the upstreams: query analysis (depth, aliases, cost), per-client
rate limits and the login throttle (`bff.limits.login`), with their stores. Imports config,
errors and auth of ours, nothing above them."""

from bff.limits.clients import ClientIdentifier
from bff.limits.gcra import Rule, Verdict, decide
from bff.limits.limiter import RateLimiter
from bff.limits.query_limits import QueryLimits, Shapes
from bff.limits.stores import MemoryRateStore, RateStore, RedisRateStore, StoreUnavailable

__all__ = [
    "ClientIdentifier",
    "MemoryRateStore",
    "QueryLimits",
    "RateLimiter",
    "RateStore",
    "RedisRateStore",
    "Rule",
    "Shapes",
    "StoreUnavailable",
    "Verdict",
    "decide",
]
