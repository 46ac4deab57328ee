"""The request being observed, carried by a context variable from the server stage down.

The telemetry stage sets it once per request; the hooks at the other seams (operation span,
dataloader batch, upstream attempt) and `metrics.rate_limited` read it, so none of them needs
the request passed in, and tasks the request starts (dataloader batches) inherit it. Outside a
request (unit tests of a loader, say) it is `None` and the hooks do nothing but run.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from bff.http.state import RequestState

if TYPE_CHECKING:
    from bff.telemetry.hub import Telemetry


class Observed:
    """One request under observation: the app's telemetry and the request's state."""

    __slots__ = ("fields", "propagated", "route", "state", "telemetry")

    def __init__(self, telemetry: Telemetry, state: RequestState, route: str = "other") -> None:
        self.telemetry = telemetry
        self.state = state
        self.route = route  # the route family (a bounded metric label)
        self.fields: tuple[str, ...] = ()  # GraphQL fields the operation used (metering)
        # (span, its traceparent and tracestate lines) last sent for a parent that does not
        # record: reused by the request's other upstream calls, which continue the same span
        self.propagated: tuple[object, bytes] | None = None


_CURRENT: ContextVar[Observed | None] = ContextVar("bff_observed", default=None)

current_observed = _CURRENT.get


def current() -> Telemetry | None:
    """The telemetry of the request being served, if any."""
    observed = _CURRENT.get()
    return None if observed is None else observed.telemetry


def observe(observed: Observed) -> object:
    """Make `observed` current; returns the token for `forget`."""
    return _CURRENT.set(observed)


def forget(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]
