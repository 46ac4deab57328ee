"""`SpanQueue`: batches in order, sampling, a full queue, a failing exporter, shutdown, fork.

Spans are plain `ReadableSpan`s; exporters are small classes here that record their batches
and can block or raise. Waits for the background thread are bounded poll loops.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from bff.telemetry.export_queue import THREAD_NAME, SpanQueue

LOGGER = "bff.telemetry"
RESOURCE = Resource.get_empty()  # shared: without one, each `ReadableSpan` makes its own (slow)


def span(number: int, sampled: bool = True) -> ReadableSpan:
    context = SpanContext(number + 1, number + 1, False, TraceFlags(1 if sampled else 0))
    return ReadableSpan(name=f"s{number}", context=context, resource=RESOURCE)


def names(count: int, start: int = 0) -> list[str]:
    return [f"s{number}" for number in range(start, start + count)]


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class Recorder(SpanExporter):
    """Records the names of each batch; can block on `release`, raise, or answer FAILURE."""

    def __init__(self, block: bool = False, raise_first: bool = False, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.calls = 0
        self.shutdowns = 0
        self.exporting = threading.Event()  # set when an export call starts
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.raise_first = raise_first
        self.fail = fail
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.calls += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            first = self.calls == 1
        self.exporting.set()
        try:
            assert self.release.wait(10), "the test never released the exporter"
            if first and self.raise_first:
                raise RuntimeError("collector exploded")
            self.batches.append([s.name for s in spans])
            return SpanExportResult.FAILURE if self.fail else SpanExportResult.SUCCESS
        finally:
            with self._lock:
                self.concurrent -= 1

    def shutdown(self) -> None:
        self.shutdowns += 1

    def exported(self) -> list[str]:
        return [name for batch in self.batches for name in batch]


@pytest.fixture
def queues() -> Iterator[list[SpanQueue]]:
    """Queues made by a test, shut down after it (their exporters released first)."""
    made: list[SpanQueue] = []
    yield made
    for queue in made:
        exporter = queue._exporter
        if isinstance(exporter, Recorder):
            exporter.release.set()
        queue.shutdown()


def make(
    queues: list[SpanQueue],
    exporter: SpanExporter,
    *,
    max_queue_size: int = 4096,
    max_batch_size: int = 512,
    delay_s: float = 1.0,
    export_timeout_s: float = 5.0,
) -> SpanQueue:
    queue = SpanQueue(
        exporter,
        max_queue_size=max_queue_size,
        max_batch_size=max_batch_size,
        delay_s=delay_s,
        export_timeout_s=export_timeout_s,
    )
    queues.append(queue)
    return queue


def test_force_flush_exports_everything_in_order_in_bounded_batches(
    queues: list[SpanQueue],
) -> None:
    exporter = Recorder()
    queue = make(queues, exporter, max_batch_size=4, delay_s=30)
    for number in range(10):
        queue.on_end(span(number))
    assert queue.force_flush() is True
    # the thread, woken at 4 spans, may have taken some: together, all of them, in order
    assert exporter.exported() == names(10)
    assert all(1 <= len(batch) <= 4 for batch in exporter.batches)
    assert len(queue._queue) == 0
    assert exporter.max_concurrent == 1  # the thread's and force_flush's exports never overlap


def test_force_flush_with_the_sdks_in_memory_exporter(queues: list[SpanQueue]) -> None:
    exporter = InMemorySpanExporter()
    queue = make(queues, exporter, delay_s=30)
    for number in range(3):
        queue.on_end(span(number))
    assert exporter.get_finished_spans() == ()
    assert queue.force_flush(timeout_millis=1000) is True
    assert [s.name for s in exporter.get_finished_spans()] == names(3)


def test_the_thread_exports_after_the_delay(queues: list[SpanQueue]) -> None:
    exporter = Recorder()
    queue = make(queues, exporter, max_batch_size=4, delay_s=0.05)
    for number in range(10):
        queue.on_end(span(number))
    assert wait_for(lambda: len(exporter.exported()) == 10)
    assert exporter.exported() == names(10)
    assert all(1 <= len(batch) <= 4 for batch in exporter.batches)
    # and again: the thread goes on after its first round
    queue.on_end(span(10))
    assert wait_for(lambda: len(exporter.exported()) == 11)
    assert exporter.batches[-1] == ["s10"]
    [thread] = [t for t in threading.enumerate() if t is queue._thread]
    assert thread.name == THREAD_NAME and thread.daemon


def test_unsampled_spans_are_never_exported(queues: list[SpanQueue]) -> None:
    exporter = Recorder()
    queue = make(queues, exporter, max_queue_size=4, max_batch_size=2, delay_s=0.01)
    for number in range(20):
        queue.on_end(span(number, sampled=number % 5 == 0))
    assert queue.force_flush() is True
    assert exporter.exported() == ["s0", "s5", "s10", "s15"]
    assert queue.dropped == 0  # unsampled spans take no room either


def test_a_full_queue_drops_without_blocking_and_warns_once(
    queues: list[SpanQueue], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    exporter = Recorder(block=True)
    queue = make(queues, exporter, max_queue_size=8, max_batch_size=4, delay_s=0.01)
    for number in range(4):
        queue.on_end(span(number))
    assert exporter.exporting.wait(2)  # the thread holds a batch of 4, stuck in the exporter

    longest = 0.0
    for number in range(4, 2004):
        started = time.perf_counter()
        queue.on_end(span(number))
        longest = max(longest, time.perf_counter() - started)
        assert len(queue._queue) <= 8
    assert longest < 0.05  # never waits for the blocked exporter (typically ~1 µs)
    assert len(queue._queue) == 8
    assert queue.dropped == 2000 - 8

    warnings_logged = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings_logged) == 1
    [record] = warnings_logged
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "queue is full" in message and "collector is slow or down" in message

    exporter.release.set()
    assert queue.force_flush() is True
    assert exporter.exported() == names(12)  # the first batch, then the 8 queued


def test_the_drop_warning_says_how_many_since_the_last(
    queues: list[SpanQueue], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    exporter = Recorder(block=True)
    queue = make(queues, exporter, max_queue_size=1, max_batch_size=1, delay_s=0.01)
    queue.on_end(span(0))
    assert exporter.exporting.wait(2)
    for number in range(1, 12):  # 1 queued, 10 dropped
        queue.on_end(span(number))
    queue._drop_warned_at -= 61  # a minute later
    queue.on_end(span(12))
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 2
    assert messages[0].startswith("1 span(s) dropped")
    assert messages[1].startswith("10 span(s) dropped") and "11 dropped since start" in messages[1]


def test_an_exporter_that_raises_does_not_stop_the_thread(
    queues: list[SpanQueue], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    exporter = Recorder(raise_first=True)
    queue = make(queues, exporter, max_batch_size=2, delay_s=0.01)
    queue.on_end(span(0))
    assert wait_for(lambda: exporter.calls >= 1)
    for number in range(1, 6):
        queue.on_end(span(number))
    assert wait_for(lambda: len(exporter.exported()) == 5)
    assert exporter.exported() == names(5, start=1)  # s0 went with the failed call
    assert queue._thread.is_alive()
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert "RuntimeError" in record.getMessage() and "collector exploded" in record.getMessage()


def test_an_exporter_that_fails_is_not_warned_of_here(
    queues: list[SpanQueue], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    exporter = Recorder(fail=True)  # answers FAILURE: a real exporter warns itself
    queue = make(queues, exporter, delay_s=0.01)
    queue.on_end(span(0))
    assert wait_for(lambda: exporter.calls >= 1)
    queue.on_end(span(1))
    assert wait_for(lambda: exporter.calls >= 2)
    assert exporter.exported() == names(2)
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_shutdown_exports_what_is_left_once_and_then_drops(
    queues: list[SpanQueue], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, LOGGER)
    exporter = Recorder()
    queue = make(queues, exporter, max_batch_size=4, delay_s=30)
    for number in range(3):
        queue.on_end(span(number))
    assert exporter.batches == []
    queue.shutdown()
    assert exporter.batches == [names(3)]
    assert exporter.shutdowns == 1
    assert not queue._thread.is_alive()

    queue.shutdown()
    assert exporter.shutdowns == 1
    for number in range(3, 20):
        queue.on_end(span(number))
    assert queue.force_flush() is False
    assert exporter.batches == [names(3)]
    assert len(queue._queue) == 0
    assert queue.dropped == 0
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_shutdown_with_a_stuck_exporter_takes_about_the_export_timeout(
    queues: list[SpanQueue],
) -> None:
    exporter = Recorder(block=True)
    queue = make(queues, exporter, max_batch_size=1, delay_s=0.01, export_timeout_s=0.2)
    queue.on_end(span(0))
    assert exporter.exporting.wait(2)
    queue.on_end(span(1))
    started = time.monotonic()
    queue.shutdown()
    assert 0.15 < time.monotonic() - started < 1.5
    assert exporter.shutdowns == 1
    assert exporter.calls == 1  # the stuck call only: no second export behind it
    exporter.release.set()


def test_the_thread_is_woken_by_a_full_batch(queues: list[SpanQueue]) -> None:
    exporter = Recorder()
    queue = make(queues, exporter, max_batch_size=4, delay_s=30)
    for number in range(3):
        queue.on_end(span(number))
    time.sleep(0.1)
    assert exporter.batches == []  # less than a batch: waits for the delay
    queue.on_end(span(3))
    assert wait_for(lambda: exporter.batches != [], timeout=2.0)
    assert exporter.batches == [names(4)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_has_its_own_thread_and_an_empty_queue(queues: list[SpanQueue]) -> None:
    exporter = InMemorySpanExporter()
    queue = make(queues, exporter, delay_s=30)
    queue.on_end(span(0))
    parent_thread = queue._thread
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report on the pipe, never return into pytest
        code = 1
        try:
            os.close(read_end)
            fresh = queue._thread is not parent_thread and queue._thread.is_alive()
            empty = len(queue._queue) == 0
            queue.on_end(span(1))
            flushed = queue.force_flush(timeout_millis=2000)
            got = [s.name for s in exporter.get_finished_spans()]
            os.write(write_end, repr((fresh, empty, flushed, got)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == repr((True, True, True, ["s1"]))
    # the parent is untouched
    assert queue.force_flush() is True
    assert [s.name for s in exporter.get_finished_spans()] == ["s0"]
