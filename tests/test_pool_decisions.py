"""The pools' decisions, pure: balancers, outlier ejection, health verdicts, retry eligibility
and the retry budget. No I/O, no sleeps: state, an event, and a clock we set by hand."""

from __future__ import annotations

import logging
import random
from collections import Counter

import pytest

from bff.upstream import (
    Instance,
    LeastRequests,
    PeakEwma,
    RoundRobin,
    Weighted,
    make_balancer,
)
from bff.upstream.budget import RetryBudget
from bff.upstream.health import HealthChecker, HealthSettings, HealthVerdicts
from bff.upstream.http11 import (
    ConnectFailed,
    ConnectionLost,
    ConnectTimedOut,
    StaleConnection,
    TimedOut,
)
from bff.upstream.outlier import OutlierDetector
from bff.upstream.request import build_request
from bff.upstream.retry import retry_after_error, retry_after_status
from bff.upstream.transport import QueueFull


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(*weights: int, zones: tuple[str | None, ...] = ()) -> list[Instance]:
    return [
        Instance(f"http://10.0.0.{n}:80", weight=w, zone=zones[n - 1] if zones else None)
        for n, w in enumerate(weights, 1)
    ]


def names(chosen: list[Instance], instances: list[Instance]) -> str:
    return "".join("abcdefgh"[instances.index(i)] for i in chosen)


# --- balancers -------------------------------------------------------------------------------


def test_weighted_interleaves_a_one_to_three_split() -> None:
    """nginx's smooth weighted round robin: 1:3 is `b a b b`, never `a b b b` bursts."""
    instances = pool(1, 3)
    balancer = Weighted(instances)
    assert names([balancer.choose() for _ in range(8)], instances) == "babbbabb"


def test_weighted_split_is_exact_over_each_cycle() -> None:
    instances = pool(5, 1, 1)
    balancer = Weighted(instances)
    chosen = [balancer.choose() for _ in range(700)]
    assert Counter(names(chosen, instances)) == {"a": 500, "b": 100, "c": 100}
    assert "aaaaaa" not in names(chosen, instances)


def test_weighted_skips_an_unusable_instance() -> None:
    instances = pool(1, 3, 2)
    instances[1].healthy = False
    balancer = Weighted(instances)
    assert Counter(names([balancer.choose() for _ in range(30)], instances)) == {"a": 10, "c": 20}


def test_least_requests_prefers_the_less_loaded_of_two() -> None:
    instances = pool(1, 1, 1)
    instances[0].in_flight = 10
    instances[1].in_flight = 10
    balancer = LeastRequests(instances, rng=random.Random(7))
    chosen = Counter(names([balancer.choose() for _ in range(300)], instances))
    # c wins whenever it is one of the two draws (5/9 of the time), else a tie of a and b
    assert chosen["c"] > chosen["a"] and chosen["c"] > chosen["b"]
    assert 140 <= chosen["c"] <= 190


def test_least_requests_never_picks_the_busiest_when_two_are_distinct() -> None:
    instances = pool(1, 1)
    instances[0].in_flight = 3
    balancer = LeastRequests(instances, rng=random.Random(1))
    chosen = [balancer.choose() for _ in range(200)]
    # the busy one wins only when both draws are it (1/4 of the time)
    assert 20 <= chosen.count(instances[0]) <= 80


def test_least_requests_splits_by_weight_when_idle() -> None:
    instances = pool(1, 3)
    balancer = LeastRequests(instances, rng=random.Random(3))
    chosen = Counter(names([balancer.choose() for _ in range(4000)], instances))
    assert 0.70 <= chosen["b"] / 4000 <= 0.80  # 3/4 expected


def test_least_requests_weighs_load_by_weight() -> None:
    a, b = pool(1, 4)
    a.in_flight, b.in_flight = 1, 3  # 1 per weight against 0.75: b is less loaded
    balancer = LeastRequests([a, b], rng=random.Random(5))
    chosen = [balancer.choose() for _ in range(200)]
    assert chosen.count(b) > 150


def test_make_balancer_knows_every_configured_kind() -> None:
    instances = pool(1, 1)
    assert isinstance(make_balancer("round_robin", instances), RoundRobin)
    assert isinstance(make_balancer("weighted", instances), Weighted)
    assert isinstance(make_balancer("least_requests", instances), LeastRequests)
    assert isinstance(make_balancer("peak_ewma", instances), PeakEwma)


def test_choose_avoids_instances_already_tried() -> None:
    instances = pool(1, 1, 1)
    balancer = RoundRobin(instances)
    for _ in range(6):
        assert balancer.choose(avoid=(instances[0], instances[1])) is instances[2]


def test_avoiding_every_local_instance_goes_to_another_zone() -> None:
    instances = pool(1, 1, zones=("dc1", "dc2"))
    balancer = RoundRobin(instances, zone="dc1")
    assert balancer.choose() is instances[0]
    assert balancer.choose(avoid=(instances[0],)) is instances[1]


def test_avoiding_everything_still_chooses() -> None:
    (only,) = pool(1)
    assert RoundRobin([only]).choose(avoid=(only,)) is only


@pytest.mark.parametrize("kind", ["round_robin", "weighted", "least_requests", "peak_ewma"])
def test_every_balancer_fails_over_zones_and_back_logging_once(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    instances = pool(1, 1, 1, zones=("dc1", "dc2", "dc2"))
    balancer = make_balancer(kind, instances, zone="dc1", clock=clock, name="users")
    caplog.set_level(logging.WARNING, "bff.upstream")
    assert {balancer.choose() for _ in range(10)} == {instances[0]}
    instances[0].healthy = False
    balancer.invalidate()
    assert {balancer.choose() for _ in range(30)} == {instances[1], instances[2]}
    assert balancer.failed_over is True
    instances[0].healthy = True
    balancer.invalidate()
    assert {balancer.choose() for _ in range(10)} == {instances[0]}
    assert balancer.failed_over is False
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "upstream users: no usable instance in zone dc1; failing over to dc2",
        "upstream users: zone dc1 usable again; failing back",
    ]


def test_an_ejection_ends_by_the_clock_alone() -> None:
    clock = Clock()
    a, b = pool(1, 1)
    balancer = RoundRobin([a, b], clock=clock)
    a.ejected_until = clock.now + 5
    balancer.invalidate()
    assert {balancer.choose() for _ in range(4)} == {b}
    clock.now += 5
    assert {balancer.choose() for _ in range(4)} == {a, b}


def test_panic_is_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    a, b = pool(1, 1)
    balancer = RoundRobin([a, b], name="users")
    caplog.set_level(logging.WARNING, "bff.upstream")
    a.healthy = b.healthy = False
    balancer.invalidate()
    for _ in range(5):
        balancer.choose()
        balancer.invalidate()
    a.healthy = True
    balancer.invalidate()
    balancer.choose()
    assert [r.getMessage() for r in caplog.records] == [
        "upstream users: no usable instance; panic mode, sending to all 2",
        "upstream users: usable instances again; panic mode over",
    ]


# --- outlier ejection ------------------------------------------------------------------------


def test_consecutive_failures_eject_and_a_success_resets_the_count() -> None:
    now = 100.0
    a, b, c, d = pool(1, 1, 1, 1)
    changes: list[int] = []
    outliers = OutlierDetector(
        [a, b, c, d], consecutive_failures=3, ejection=10, on_change=lambda: changes.append(1)
    )
    assert not outliers.failed(a, now, "ConnectFailed")
    assert not outliers.failed(a, now, "ConnectFailed")
    outliers.succeeded(a, now)
    assert not outliers.failed(a, now, "status 503")
    assert not outliers.failed(a, now, "status 503")
    assert outliers.failed(a, now, "status 503")
    assert a.ejected(now) and a.ejected_until == now + 10
    assert a.eject_reason == "3 consecutive failures, last: status 503"
    assert changes == [1]
    assert not a.usable(now + 9.9) and a.usable(now + 10)


def test_repeated_ejections_back_off_longer() -> None:
    a, b = pool(1, 1)
    outliers = OutlierDetector([a, b], consecutive_failures=1, ejection=10)
    now = 0.0
    durations = []
    for _ in range(4):
        assert outliers.failed(a, now, "ConnectFailed")
        durations.append(a.ejected_until - now)
        now = a.ejected_until
    assert durations == [10, 20, 30, 40]


def test_ejection_back_off_is_forgiven_after_good_behaviour() -> None:
    a, b = pool(1, 1)
    outliers = OutlierDetector([a, b], consecutive_failures=1, ejection=10)
    outliers.failed(a, 0.0, "x")
    outliers.failed(a, 10.0, "x")  # ejections 2, out until 30
    assert a.ejections == 2
    outliers.succeeded(a, 31.0)  # too soon after the last ejection
    assert a.ejections == 2
    outliers.succeeded(a, 30.0 + 20.0)
    assert a.ejections == 1


def test_at_most_half_a_pool_is_ejected_at_once() -> None:
    instances = pool(1, 1, 1, 1)
    outliers = OutlierDetector(instances, consecutive_failures=1, ejection=10)
    results = [outliers.failed(i, 0.0, "x") for i in instances]
    assert results == [True, True, False, False]
    assert outliers.ejected_count(0.0) == 2


def test_one_instance_may_always_be_ejected() -> None:
    a, b, c = pool(1, 1, 1)
    outliers = OutlierDetector([a, b, c], consecutive_failures=1, ejection=10)
    assert outliers.failed(a, 0.0, "x")
    assert not outliers.failed(b, 0.0, "x")  # 3 x 50 % rounds down to 1
    (only,) = pool(1)
    assert OutlierDetector([only], consecutive_failures=1, ejection=10).failed(only, 0.0, "x")


# --- health verdicts -------------------------------------------------------------------------


def test_health_thresholds_take_out_and_bring_back() -> None:
    (a,) = pool(1)
    verdicts = HealthVerdicts(HealthSettings(unhealthy_threshold=3, healthy_threshold=2))
    assert not verdicts.observe(a, True, 0.0)  # first probe: already healthy
    assert not verdicts.observe(a, False, 1.0)
    assert not verdicts.observe(a, False, 2.0)
    assert verdicts.observe(a, False, 3.0) and not a.healthy
    assert a.health_reason == "3 failed probe(s) of /health" and a.since == 3.0
    assert not verdicts.observe(a, True, 4.0)
    assert not verdicts.observe(a, False, 5.0)  # a good streak broken
    assert not verdicts.observe(a, True, 6.0)
    assert verdicts.observe(a, True, 7.0) and a.healthy and a.health_reason is None


def test_the_first_probe_decides_at_once() -> None:
    a, b = pool(1, 1)
    verdicts = HealthVerdicts(HealthSettings(unhealthy_threshold=5, healthy_threshold=5))
    assert verdicts.observe(a, False, 0.0) and not a.healthy
    b.healthy = False
    assert verdicts.observe(b, True, 0.0) and b.healthy


def test_probe_delays_are_jittered_within_bounds() -> None:
    async def never(instance: Instance) -> bool:
        raise AssertionError("not probed here")

    settings = HealthSettings(interval=2.0)
    checker = HealthChecker(pool(1), never, HealthVerdicts(settings), rng=random.Random(11))
    firsts = [checker.delay(first=True) for _ in range(200)]
    laters = [checker.delay(first=False) for _ in range(200)]
    assert all(0 <= d <= 2.0 for d in firsts) and max(firsts) - min(firsts) > 1.5
    assert all(1.8 <= d <= 2.2 for d in laters) and len(set(laters)) > 100


# --- retry eligibility and budget ------------------------------------------------------------


GET = build_request("GET", "/users", params={"ids": "1,2"})
POST = build_request("POST", "/orders", json={"x": 1})


def test_idempotent_requests_retry_on_gateway_statuses_only() -> None:
    assert [s for s in (500, 501, 502, 503, 504, 404, 200) if retry_after_status(GET, s)] == [
        502,
        503,
        504,
    ]
    assert not retry_after_status(POST, 503)


def test_retry_after_errors() -> None:
    for error in (ConnectFailed("x"), ConnectTimedOut("x"), QueueFull("x")):
        assert retry_after_error(GET, error) and retry_after_error(POST, error), error
    assert retry_after_error(GET, StaleConnection("x"))
    assert not retry_after_error(POST, StaleConnection("x"))
    assert not retry_after_error(GET, TimedOut("x"))  # the total budget ran out
    assert not retry_after_error(GET, ConnectionLost("x", received=True))
    assert retry_after_error(GET, ConnectionLost("x", received=False))  # reset mid-request
    assert not retry_after_error(POST, ConnectionLost("x", received=False))
    unsent = ConnectionLost("x", received=False)
    unsent.request_sent = False  # type: ignore[attr-defined]
    assert retry_after_error(POST, unsent)


def test_retry_budget_allows_three_then_a_fifth_of_the_load() -> None:
    budget = RetryBudget()
    budget.requests = 5
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    budget.requests = 20  # 20 % of 20 is 4
    assert budget.try_acquire() and not budget.try_acquire()
    assert budget.refused == 2
    budget.release()
    assert budget.try_acquire()
