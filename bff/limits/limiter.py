"""Per-client rate limits: which budget applies to whom, and what to do when Redis is away.

A client's budget is its own entry in `rate_limits.clients`, else the most generous of
`rate_limits.scopes` it holds a scope of, else `rate_limits.default`. When the shared store
cannot answer, `rate_limits.on_store_error` decides: `allow` (requests pass) or `deny` (503).
Either way one warning is logged per outage, the store is left alone for a second (so an
outage costs no connect timeout per request), then tried again: recovery needs no restart.

`RateLimiter.rejected` counts refused requests: the telemetry layer reads it as
`bff_rate_limited_total` (this package imports no metrics library).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from bff.config import RateLimitRule, RateLimitsConfig
from bff.limits.gcra import Rule, Verdict
from bff.limits.stores import RateStore, StoreUnavailable

log = logging.getLogger("bff.limits")

RETRY_STORE_AFTER = 1.0  # seconds an unreachable store is left alone


def _rule(config: RateLimitRule) -> Rule:
    return Rule(config.requests, config.per)


class RateLimiter:
    def __init__(
        self,
        store: RateStore,
        config: RateLimitsConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.default = _rule(config.default)
        self.clients = {client: _rule(rule) for client, rule in config.clients.items()}
        self.scopes = {scope: _rule(rule) for scope, rule in config.scopes.items()}
        self.fail_open = config.on_store_error == "allow"
        self.rejected = 0  # requests refused so far (bff_rate_limited_total)
        self.store_errors = 0  # hits the store could not answer
        self.store_down = False
        self._retry_store_at = 0.0

    def rule_for(self, client: str, scopes: Iterable[str] = ()) -> Rule:
        """The budget of `client`: its own, else its most generous scope's, else the default."""
        own = self.clients.get(client)
        if own is not None:
            return own
        if self.scopes:
            matching = [self.scopes[s] for s in scopes if s in self.scopes]
            if matching:
                return max(matching, key=lambda r: r.limit / r.period)
        return self.default

    async def check(self, client: str, scopes: Iterable[str] = ()) -> Verdict | None:
        """The verdict for one request of `client`; `None` when the store is down and
        `on_store_error` is `allow`. Raises `StoreUnavailable` when it is `deny`."""
        return await self.hit(client, self.rule_for(client, scopes))

    async def hit(self, key: str, rule: Rule) -> Verdict | None:
        """One request of `key` under `rule`, with the store-error policy of `check`."""
        if self.store_down and self.clock() < self._retry_store_at:
            self._store_failed(None)
            return None
        try:
            allowed, wait_us, backlog_us = await self.store.hit(key, rule)
        except StoreUnavailable as error:
            self._store_failed(error)
            return None
        if self.store_down:
            self.store_down = False
            log.warning("rate limit store reachable again; rate limits apply again")
        if not allowed:
            self.rejected += 1
        return Verdict.of(rule, allowed, wait_us, backlog_us)

    def _store_failed(self, error: StoreUnavailable | None) -> None:
        """Note the failure; raise `StoreUnavailable` unless the policy is to let through."""
        if error is not None:
            self.store_errors += 1
            self._retry_store_at = self.clock() + RETRY_STORE_AFTER
            if not self.store_down:
                self.store_down = True
                policy = "letting requests through" if self.fail_open else "refusing requests"
                log.warning(
                    "rate limit store unreachable (%s): %s until it is back "
                    "(rate_limits.on_store_error)",
                    error,
                    policy,
                )
        if not self.fail_open:
            raise StoreUnavailable("rate limit store unreachable")
