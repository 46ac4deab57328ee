"""The login throttle (SPEC section 15): `rate_limits.login`, per address and per account.

One attempt counts once against the client's address and once against the account it tries
(`bff.auth.throttle`); either budget spent refuses it with `RateLimited` and the wait of the
budget that reopens last (`Retry-After`). A budget that refuses is not spent (GCRA), but the
other one is: an attempt refused for its account still counts as one from its address.
Budgets are GCRA rules, in the same store as the other rate limits (Redis when configured, so
every replica shares them, else memory), and the store being unreachable follows
`rate_limits.on_store_error` like every other limit: `allow` lets the attempt through, `deny`
refuses it with 503.
"""

from __future__ import annotations

import asyncio
import math

from bff.config import RateLimitsConfig
from bff.errors import RateLimited, UpstreamUnavailable
from bff.limits.gcra import Rule
from bff.limits.limiter import RateLimiter
from bff.limits.stores import RateStore, StoreUnavailable

KEY = "login:"


class LoginThrottled(RateLimited):
    default_message = "Too many login attempts; try again later"


class LoginThrottle:
    """Implements `bff.auth.throttle.LoginGate` over a rate store."""

    def __init__(self, store: RateStore, config: RateLimitsConfig) -> None:
        login = config.login
        self.per_address = Rule(login.per_address.requests, login.per_address.per)
        self.per_account = Rule(login.per_username.requests, login.per_username.per)
        self.limiter = RateLimiter(store, config)  # its store-error policy, its `rejected`

    async def admit(self, address: str | None, account: str | None) -> None:
        hits = []
        if account is not None:
            hits.append(self.limiter.hit(KEY + account, self.per_account))
        if address is not None:
            hits.append(self.limiter.hit(KEY + "addr:" + address, self.per_address))
        try:
            verdicts = await asyncio.gather(*hits)  # one store round trip (one loop turn)
        except StoreUnavailable:
            raise UpstreamUnavailable(
                "rate-limit-store", "Login throttling is unavailable; try again shortly"
            ) from None
        waits = [v.retry_after for v in verdicts if v is not None and not v.allowed]
        if waits:
            seconds = max(1, math.ceil(max(waits)))
            raise LoginThrottled(
                f"Too many login attempts; try again in {seconds} s", retryAfter=seconds
            )
