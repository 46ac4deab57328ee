"""The dataloader contract of `BatchLoader`, on a loader whose batch call is recorded.

The integration tests count upstream calls at the services; these pin the contract itself:
what shares a batch, what is remembered, what a failure does to each key, and that a
cancelled waiter never cancels a batch others wait for.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable
from typing import Any

import pytest

from bff.auth import Principal
from bff.errors import UpstreamUnavailable
from bff.graph.client import id_list
from bff.graph.keys import Keys
from bff.graph.loader import BatchLoader, KeyLoader
from bff.graphql.executor import GraphQLExecutor
from bff.upstream import Upstreams
from services import RunningServices
from tests.support import DASHBOARD, SHOP, SHOP_SCHEMA, gateway_settings


class Squares(BatchLoader[int, int, tuple[int, int]]):
    """Knows the square of every non-negative key; a negative key is unknown (None)."""

    def __init__(self) -> None:
        super().__init__(clients=None)  # type: ignore[arg-type]
        self.batches: list[list[int]] = []
        self.fail_with: Exception | None = None
        self.release = asyncio.Event()
        self.release.set()

    async def fetch(self, keys: list[int]) -> Iterable[tuple[int, int]]:
        self.batches.append(list(keys))
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [(k, k * k) for k in keys if k >= 0]

    def key_of(self, record: tuple[int, int]) -> int:
        return record[0]

    def collect(self, keys: Any, records: Iterable[tuple[int, int]]) -> list[int | None]:
        found = dict(records)
        return [found.get(k) for k in keys]


class Named:
    """A record whose key is an attribute."""

    def __init__(self, code: str, label: str) -> None:
        self.code, self.label = code, label


class ByCode(BatchLoader[str, Named, Named]):
    """Knows the codes that are not upper case; its records come back in another order."""

    key_attribute = "code"

    def __init__(self) -> None:
        super().__init__(clients=None)  # type: ignore[arg-type]

    async def fetch(self, keys: list[str]) -> Iterable[Named]:
        return (Named(k, f"label {k}") for k in reversed(keys) if not k.isupper())


VARS = {"first": 20}


def run(test: Any) -> Any:
    return asyncio.run(test())


def test_satisfies_the_loader_protocol() -> None:
    assert isinstance(Squares(), KeyLoader)
    checked: KeyLoader[int, int] = Squares()  # and statically, for the type checker
    assert checked.prime(1, 1) is checked


def test_loads_from_sibling_tasks_share_one_batch_without_duplicates() -> None:
    async def main() -> tuple[list[Any], list[list[int]]]:
        loader = Squares()
        results = await asyncio.gather(
            loader.load_settled([3, 1, 3]),
            loader.load(2),
            loader.load_many([1, 4]),
            loader.load_settled([-1]),
        )
        return results, loader.batches

    results, batches = run(main)
    assert results == [[9, 1, 9], 4, [1, 16], [None]]
    assert len(batches) == 1 and sorted(batches[0]) == [-1, 1, 2, 3, 4]


def test_the_keys_that_opened_a_batch_get_its_first_results_and_joiners_their_own() -> None:
    async def main() -> tuple[list[Any], list[list[int]]]:
        loader = Squares()
        results = await asyncio.gather(
            loader.load_settled([1, 2]),  # opens the batch: its results, as they are
            loader.load_settled([2, 3]),
            loader.load_settled((4, -2)),
            loader.load_settled([1]),
        )
        return results, loader.batches

    results, batches = run(main)
    assert results == [[1, 4], [4, 9], [16, None], [1]]
    assert batches == [[1, 2, 3, 4, -2]]


def test_a_key_attribute_realigns_records_to_their_keys() -> None:
    async def main() -> list[Any]:
        return await ByCode().load_settled(["b", "X", "a", "b"])

    found = run(main)
    assert [None if n is None else n.label for n in found] == [
        "label b",
        None,
        "label a",
        "label b",
    ]
    assert ByCode().key_of(Named("q", "")) == "q"


class Nested:
    def __init__(self, code: str) -> None:
        self.inner = Named(code, f"nested {code}")


class ByInnerCode(BatchLoader[str, Nested, Nested]):
    """A dotted key attribute: read by `attrgetter`, as before."""

    key_attribute = "inner.code"
    seen: list[Any] = []

    async def fetch(self, keys: list[str]) -> Iterable[Nested]:
        self.seen.append(keys)
        return [Nested(k) for k in keys]


def test_a_dotted_key_attribute_and_a_batch_of_distinct_keys_marked_as_such() -> None:
    async def main() -> list[Any]:
        return await ByInnerCode(clients=None).load_settled(["b", "a", "b", "c", "a"])

    found = run(main)
    assert [n.inner.label for n in found] == ["nested b", "nested a", "nested b", "nested c",
                                               "nested a"]  # fmt: skip
    (keys,) = ByInnerCode.seen
    assert type(keys) is Keys and keys == ["b", "a", "c"]


def test_an_id_list_removes_duplicates_unless_they_are_a_batchs_keys() -> None:
    assert id_list([3, 1, 3, 2, 1]) == "3,1,2"
    assert id_list(iter([5, 5])) == "5"
    assert id_list(Keys([3, 1, 2])) == "3,1,2"  # distinct by construction: written as they are


def test_settled_keys_are_not_asked_again_in_the_request() -> None:
    async def main() -> tuple[list[Any], list[Any], list[list[int]]]:
        loader = Squares()
        first = await loader.load_settled([1, 2])
        second = await loader.load_settled([2, 1, 5])
        return first, second, loader.batches

    first, second, batches = run(main)
    assert (first, second) == ([1, 4], [4, 1, 25])
    assert batches == [[1, 2], [5]]


def test_an_upstream_failure_is_every_keys_value_and_is_remembered() -> None:
    async def main() -> tuple[list[Any], Any, list[list[int]]]:
        loader = Squares()
        loader.fail_with = UpstreamUnavailable("squares")
        settled = await loader.load_settled([1, 2])
        with pytest.raises(UpstreamUnavailable):
            await loader.load(1)
        return settled, loader.fail_with, loader.batches

    settled, error, batches = run(main)
    assert settled == [error, error]
    assert batches == [[1, 2]]  # the second load did not ask again


def test_an_unexpected_failure_reaches_every_key_and_is_not_remembered() -> None:
    async def main() -> tuple[list[Any], list[Any], list[list[int]]]:
        loader = Squares()
        loader.fail_with = RuntimeError("bug")
        failed = await loader.load_settled([1, 2])
        loader.fail_with = None
        again = await loader.load_settled([1])
        return failed, again, loader.batches

    failed, again, batches = run(main)
    assert [type(e) for e in failed] == [RuntimeError, RuntimeError]
    assert again == [1]
    assert batches == [[1, 2], [1]]


def test_a_batch_of_the_wrong_length_is_an_error_for_every_key() -> None:
    class Short(Squares):
        async def batch_load_fn(self, keys: list[int]) -> list[Any]:
            return [1]

    async def main() -> list[Any]:
        return await Short().load_settled([1, 2])

    assert [type(e) for e in run(main)] == [TypeError, TypeError]


def test_a_cancelled_waiter_does_not_cancel_the_batch_others_wait_for() -> None:
    async def main() -> tuple[list[Any], bool]:
        loader = Squares()
        loader.release.clear()
        doomed = asyncio.create_task(loader.load_settled([1, 2]))
        survivor = asyncio.create_task(loader.load_settled([2]))
        await asyncio.sleep(0.01)  # the batch is in flight
        doomed.cancel()
        await asyncio.sleep(0)
        loader.release.set()
        return await survivor, doomed.cancelled()

    assert run(main) == ([4], True)


def test_prime_and_clear() -> None:
    async def main() -> tuple[list[Any], list[list[int]]]:
        loader = Squares()
        loader.prime(7, 1000)
        primed = await loader.load(7)
        await loader.load(3)
        loader.clear(3)
        loader.prime(3, -3)  # cleared: a primed value is taken again
        cleared = await loader.load(3)
        loader.clear_all()
        again = await loader.load(7)
        return [primed, cleared, again], loader.batches

    values, batches = run(main)
    assert values == [1000, -3, 49]
    assert batches == [[3], [7]]


def test_a_key_cleared_while_in_flight_is_not_remembered() -> None:
    async def main() -> tuple[list[Any], list[list[int]]]:
        loader = Squares()
        loader.release.clear()
        waiting = asyncio.create_task(loader.load_settled([5]))
        await asyncio.sleep(0.01)
        loader.clear(5)  # e.g. a mutation changed it meanwhile
        loader.release.set()
        first = await waiting
        return [first, await loader.load_settled([5])], loader.batches

    values, batches = run(main)
    assert values == [[25], [25]]
    assert batches == [[5], [5]]


def test_keys_cleared_primed_and_asked_again_while_their_batch_flies() -> None:
    """While one batch holds every waiting key, clearing, priming and new loads still see
    its keys waiting: the first batch settles what was not cleared, a second asks again."""

    async def main() -> tuple[list[Any], list[list[int]], list[Any]]:
        loader = Squares()
        loader.release.clear()
        first = asyncio.create_task(loader.load_settled([1, 2, 3]))
        await asyncio.sleep(0.01)  # in flight
        loader.prime(1, -100)  # waiting: not taken
        loader.clear(2)
        second = asyncio.create_task(loader.load_settled([2, 4]))
        await asyncio.sleep(0.01)
        loader.release.set()
        values = [await first, await second]
        later = [await loader.load(k) for k in (1, 2, 3, 4)]  # all remembered: no batch more
        loader.clear_all()
        loader.release.clear()
        third = asyncio.create_task(loader.load_settled([6]))
        await asyncio.sleep(0.01)
        loader.clear_all()  # while it flies: it answers, and nothing is remembered
        loader.release.set()
        values.append(await third)
        return values, loader.batches, [*later, 6 in loader._settled]

    values, batches, later = run(main)
    assert values == [[1, 4, 9], [4, 16], [36]]
    assert batches == [[1, 2, 3], [2, 4], [6]]
    assert later == [1, 4, 9, 16, False]


def test_load_without_a_key_is_a_type_error() -> None:
    async def main() -> None:
        Squares().load(None)  # type: ignore[arg-type]

    with pytest.raises(TypeError):
        run(main)


def test_a_request_leaves_no_reference_cycles(shop: RunningServices) -> None:
    """A cycle through the request's context would keep every record of the request alive
    until the cyclic collector's next pass: a quarter of a Dashboard's CPU went there once."""
    executor = GraphQLExecutor(SHOP_SCHEMA)
    prepared = executor.prepare(DASHBOARD)
    who = Principal(sub="1", scopes=frozenset({"orders:read"}))

    async def main() -> int:
        pools = Upstreams.from_settings(gateway_settings(shop.urls))
        assert pools.get("users") is pools["users"] and pools.get("nowhere") is None
        try:
            for _ in range(2):  # the first request fills pools and caches
                context = SHOP.context(who, pools)
                result = await executor.execute(
                    prepared, operation_name=None, variables=VARS, context=context
                )
                assert result.errors is None and result.data is not None
                del context, result
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                context = SHOP.context(who, pools)
                result = await executor.execute(
                    prepared, operation_name=None, variables=VARS, context=context
                )
                assert result.data is not None
                del context, result
                found = gc.collect()
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            return found
        finally:
            await pools.aclose()

    gc.disable()
    try:
        assert asyncio.run(main()) == 0
    finally:
        gc.enable()


def test_cancel_pending_abandons_batches_in_flight_and_not_yet_dispatched() -> None:
    """What a request whose client hung up leaves behind: nothing keeps loading."""

    async def main() -> tuple[list[list[int]], bool, bool, bool]:
        loader = Squares()
        loader.release.clear()  # the upstream never answers
        flying = asyncio.ensure_future(loader.load_settled([1, 2]))
        while not loader.batches:  # dispatched, its fetch awaiting the upstream
            await asyncio.sleep(0)
        fetch = next(iter({id(b): b for b in loader._spread().values()}.values())).task
        queued = loader.load(3)  # in a batch not dispatched yet
        loader.cancel_pending()
        await asyncio.gather(flying, queued, return_exceptions=True)
        for _ in range(5):  # the queued batch's dispatch turn passes
            await asyncio.sleep(0)
        assert fetch is not None
        return loader.batches, fetch.cancelled(), flying.cancelled(), queued.cancelled()

    batches, fetch_cancelled, flying_cancelled, queued_cancelled = run(main)
    assert batches == [[1, 2]]  # key 3 never reached the upstream
    assert fetch_cancelled and flying_cancelled and queued_cancelled
