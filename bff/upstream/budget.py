"""`RetryBudget`: retries may add at most a share of the load an upstream already has.

An outage makes every request fail, and retrying every failure doubles the load on what is
left. The budget caps retries in flight at `ratio` (20 %) of the requests in flight to the
upstream, but always allows `minimum` (3) concurrent retries, so retries still work at low
traffic (Envoy's retry budget with `min_retry_concurrency`). Pure counters: no clock, no I/O.
"""

from __future__ import annotations

RATIO = 0.2
MINIMUM = 3


class RetryBudget:
    __slots__ = ("minimum", "ratio", "refused", "requests", "retries")

    def __init__(self, ratio: float = RATIO, minimum: int = MINIMUM) -> None:
        self.ratio = ratio
        self.minimum = minimum
        self.requests = 0  # calls in flight to the upstream, retrying or not
        self.retries = 0  # retries in flight
        self.refused = 0  # retries the budget said no to, since start

    def try_acquire(self) -> bool:
        """Take a retry slot if the budget allows one now; `release()` it when done."""
        if self.retries < max(self.minimum, self.ratio * self.requests):
            self.retries += 1
            return True
        self.refused += 1
        return False

    def release(self) -> None:
        self.retries -= 1
