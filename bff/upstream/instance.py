"""One upstream instance and the state the balancer, health checks and outliers share.

Plain attributes, written by one owner each and read by anyone (the balancer, `/readyz`,
`/admin/upstreams`, telemetry):

- `healthy`, `health_reason`: the active health checker's verdict (`bff.upstream.health`);
- `ejected_until`, `ejections`, `consecutive_failures`, `eject_reason`: passive outlier
  detection (`bff.upstream.outlier`);
- `in_flight`: requests sent or queued to it now (`BalancedTransport`);
- `latency`, `error_rate`: moving averages of recent attempts (`record`);
- `peak_latency`, `peak_at`: the `peak_ewma` balancer's latency estimate and when it was last
  updated (`bff.upstream.peak_ewma`; untouched under the other balancers);
- `since`: when `healthy` or the ejection last changed, `time.monotonic()` seconds.

Times are `time.monotonic()` seconds, never wall clock, so a clock step cannot eject anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Weight of the newest attempt in the moving averages: about the last 20 attempts count.
EWMA_ALPHA = 0.1


@dataclass(eq=False, slots=True)
class Instance:
    """An address of an upstream service and what the gateway knows about it now."""

    url: str
    weight: int = 1
    zone: str | None = None
    healthy: bool = True
    in_flight: int = field(default=0)
    health_reason: str | None = None
    ejected_until: float = 0.0
    ejections: int = 0
    consecutive_failures: int = 0
    eject_reason: str | None = None
    since: float = 0.0
    latency: float = 0.0  # seconds, moving average of recent attempts
    error_rate: float = 0.0  # 0..1, moving average of recent attempts
    attempts: int = 0
    peak_latency: float = 0.0  # seconds, peak-sensitive and decaying by time (`peak_ewma`)
    peak_at: float = 0.0  # monotonic time of the last update of `peak_latency`

    def usable(self, now: float) -> bool:
        """Whether the balancer may pick it: healthy and not ejected at `now`."""
        return self.healthy and self.ejected_until <= now

    def ejected(self, now: float) -> bool:
        return self.ejected_until > now

    def record(self, failed: bool, seconds: float) -> None:
        """Fold one attempt into the moving latency and error rate (cheap: a few float ops)."""
        self.attempts += 1
        if self.attempts == 1:
            self.latency = seconds
            self.error_rate = 1.0 if failed else 0.0
            return
        self.latency += EWMA_ALPHA * (seconds - self.latency)
        self.error_rate += EWMA_ALPHA * ((1.0 if failed else 0.0) - self.error_rate)

    def leave(self) -> None:
        """One exchange with it is over (a streamed one ends when its response closes)."""
        self.in_flight -= 1

    def __repr__(self) -> str:
        return f"Instance({self.url!r}, weight={self.weight}, zone={self.zone!r})"
