"""The `peak_ewma` balancer's decisions, pure: latency estimates fed by hand, a clock set by
hand, a seeded random draw. No I/O, no sleeps."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from bff.upstream import Instance, PeakEwma, UpstreamPool, make_balancer
from bff.upstream.outlier import OutlierDetector
from bff.upstream.peak_ewma import DECAY, FAILURE_SECONDS, FLOOR_SECONDS
from bff.upstream.request import build_request
from bff.upstream.transport import BalancedTransport
from services import RunningServices, ServiceOptions, ServiceSpec

FAST, SLOW = 0.002, 0.1  # seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def three() -> tuple[list[Instance], Clock, PeakEwma]:
    instances = [Instance(f"http://10.0.0.{n}:80") for n in (1, 2, 3)]
    clock = Clock()
    return instances, clock, PeakEwma(instances, clock=clock, rng=random.Random(11))


def shares(balancer: PeakEwma, instances: list[Instance], n: int) -> list[int]:
    chosen = Counter(balancer.choose() for _ in range(n))
    return [chosen[i] for i in instances]


def test_the_slow_one_of_three_is_never_picked_while_its_slowness_is_fresh() -> None:
    instances, clock, balancer = three()
    for instance, seconds in zip(instances, (FAST, FAST, SLOW), strict=True):
        balancer.observe(instance, seconds, clock.now, failed=False)
    # two distinct draws: the dearest of three loses every comparison it is in
    a, b, slow = shares(balancer, instances, 600)
    assert slow == 0
    assert a > 200 and b > 200


def test_requests_in_flight_multiply_the_cost() -> None:
    a, b = [Instance("http://a"), Instance("http://b")]
    clock = Clock()
    balancer = PeakEwma([a, b], clock=clock, rng=random.Random(3))
    balancer.observe(a, 0.010, clock.now, failed=False)
    balancer.observe(b, 0.004, clock.now, failed=False)
    assert {balancer.choose() for _ in range(50)} == {b}
    b.in_flight = 2  # 4 ms x 3 = 12 ms against 10 ms x 1
    assert {balancer.choose() for _ in range(50)} == {a}


def test_one_slow_answer_is_the_estimate_at_once_and_quick_ones_forget_it_by_time() -> None:
    (instance,) = [Instance("http://a")]
    clock = Clock()
    balancer = PeakEwma([instance], clock=clock)
    balancer.observe(instance, FAST, clock.now, failed=False)
    clock.now += 0.01
    balancer.observe(instance, SLOW, clock.now, failed=False)
    assert instance.peak_latency == SLOW  # the peak, not a tenth of the way there
    for _ in range(100):  # a hundred quick answers within a tenth of a second change little
        clock.now += 0.001
        balancer.observe(instance, FAST, clock.now, failed=False)
    assert instance.peak_latency > 0.09
    for _ in range(300):  # the same answers over 30 s (3 decay times) bring it down
        clock.now += 0.1
        balancer.observe(instance, FAST, clock.now, failed=False)
    assert instance.peak_latency < 0.01


def test_an_avoided_slow_instance_is_tried_again_after_a_while() -> None:
    instances, clock, balancer = three()
    balancer.observe(instances[2], SLOW, clock.now, failed=False)
    slow = instances[2]
    seen_again_at = None
    for step in range(1, 121):  # two minutes, half a second at a time
        clock.now += 0.5
        for fast in instances[:2]:  # the fast ones keep answering
            balancer.observe(fast, FAST, clock.now, failed=False)
        if balancer.choose() is slow or balancer.choose() is slow:
            seen_again_at = step * 0.5
            break
    # its decayed estimate meets the fast ones' after about DECAY x ln(SLOW / FAST) = 39 s
    assert seen_again_at is not None
    assert 0.8 * DECAY * 3.9 <= seen_again_at <= 1.2 * DECAY * 3.9


def simulate(
    balancer: PeakEwma, clock: Clock, latencies: list[float], seconds: float, rate: float = 100
) -> list[int]:
    """`rate` calls a second, one at a time, each answered after its instance's latency."""
    instances = balancer.instances
    counts = [0] * len(instances)
    for _ in range(int(seconds * rate)):
        clock.now += 1 / rate
        chosen = balancer.choose()
        k = instances.index(chosen)
        counts[k] += 1
        balancer.observe(chosen, latencies[k], clock.now + latencies[k], failed=False)
    return counts


def test_a_slow_instance_costs_one_call_per_retry_and_gets_its_share_back_once_quick() -> None:
    _, clock, balancer = three()
    simulate(balancer, clock, [FAST, FAST, FAST], 1.0)
    slowed = simulate(balancer, clock, [FAST, FAST, SLOW], 30.0)
    # found out on its first slow answer, then tried again about every DECAY x ln(50) = 39 s
    assert slowed[2] <= 2, slowed
    recovered = simulate(balancer, clock, [FAST, FAST, FAST], 60.0)
    assert recovered[2] > 0.25 * sum(recovered), recovered


def test_a_try_of_an_avoided_instance_is_one_call_at_a_time() -> None:
    instances, clock, balancer = three()
    slow = instances[2]
    balancer.observe(slow, SLOW, clock.now - 60, failed=False)  # decayed below the others
    for fast in instances[:2]:
        balancer.observe(fast, FAST, clock.now, failed=False)
    assert shares(balancer, instances, 300)[2] > 150  # the cheapest: tried whenever drawn
    slow.in_flight = 1  # the try is out: until it answers, the slow one counts as it last did
    assert shares(balancer, instances, 300)[2] == 0


def test_a_quick_failure_does_not_make_an_instance_the_cheapest() -> None:
    instances, clock, balancer = three()
    for fast in instances[:2]:
        balancer.observe(fast, FAST, clock.now, failed=False)
    balancer.observe(instances[2], 0.0001, clock.now, failed=True)  # connection refused
    assert instances[2].peak_latency == FAILURE_SECONDS
    assert shares(balancer, instances, 300)[2] == 0


def test_unobserved_instances_compare_by_load() -> None:
    a, b = [Instance("http://a"), Instance("http://b")]
    balancer = PeakEwma([a, b], clock=Clock(), rng=random.Random(2))
    a.in_flight = 1
    assert {balancer.choose() for _ in range(50)} == {b}
    assert balancer.cost(b, 1000.0) == FLOOR_SECONDS


def test_cost_is_per_unit_of_weight() -> None:
    light, heavy = Instance("http://a", weight=1), Instance("http://b", weight=3)
    clock = Clock()
    balancer = PeakEwma([light, heavy], clock=clock, rng=random.Random(5))
    for instance in (light, heavy):
        balancer.observe(instance, 0.010, clock.now, failed=False)
    heavy.in_flight = 2  # 10 ms x 3 / 3 against 10 ms x 1 / 1: a tie keeps the first draw
    light.in_flight = 1  # 10 ms x 2 / 1 = 20 ms: now heavy is cheaper
    assert {balancer.choose() for _ in range(50)} == {heavy}


def test_the_transport_reports_each_attempt_to_peak_ewma_only() -> None:
    instances, clock, balancer = three()
    transport = BalancedTransport(
        balancer, max_connections=3, connect_timeout=0.5, outliers=OutlierDetector(instances)
    )
    transport.clock = clock
    started = clock.now
    clock.now += 0.03
    transport._account(instances[0], started, None)
    assert abs(instances[0].peak_latency - 0.03) < 1e-9 and instances[0].peak_at == clock.now
    others = [Instance("http://x"), Instance("http://y")]
    plain = BalancedTransport(
        make_balancer("least_requests", others), max_connections=2, connect_timeout=0.5
    )
    plain.clock = clock
    plain._account(others[0], started, None)
    assert others[0].peak_latency == 0.0 and others[0].latency > 0


def test_a_pooled_call_that_succeeds_is_observed_on_both_send_paths() -> None:
    """Through a pool to a real service: `send` (a buffered call) and `stream` (passthrough)
    each give peak_ewma the attempt's latency, not only its failures."""

    async def scenario(url: str) -> tuple[float, float]:
        instance = Instance(url)
        pool = UpstreamPool("users", [instance], balancer="peak_ewma", total_timeout=5.0)
        try:
            answer = await pool.request("GET", "/users/1")
            assert answer.status == 200
            after_send = instance.peak_latency
            instance.peak_latency = 0.0
            request = build_request("GET", "/users/2", streamed=True)
            streamed = await pool.stream(request, time.monotonic() + 5.0)
            assert streamed.status == 200
            await streamed.aclose()
            return after_send, instance.peak_latency
        finally:
            await pool.aclose()

    options = ServiceOptions(latency=0.02)
    with RunningServices([ServiceSpec("users", options)]) as running:
        after_send, after_stream = asyncio.run(scenario(running.url("users")))
    assert after_send >= 0.02 and after_stream >= 0.02
