"""`SpanQueue`: ended spans to the exporter in batches, from one background thread.

Used instead of the SDK's `BatchSpanProcessor` for its cost on the request path, where
`on_end` runs for every span (about a dozen a request): the SDK's processor calls
`os.getpid()` per span (to notice a fork), goes through a generic batch processor's checks
and metrics hooks, and logs a warning for every span it drops while its queue is full. Here
`on_end` is a flag test, a length test and an append (a fork is handled by
`os.register_at_fork`), and dropped spans cost one warning a minute. The guarantees are the
same: bounded memory (past `max_queue_size` waiting spans, new ones are dropped and counted),
a request never blocks, and export runs in batches on a background thread.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("bff.telemetry")

WARN_EVERY = 60.0  # seconds between two warnings of one kind
THREAD_NAME = "bff-span-export"
# what the SDK's processor sets while it exports, so that instrumented clients used by an
# exporter (gRPC, HTTP) make no spans of the export itself; a private name: without it, not set
_SUPPRESS: str | None = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None)


class SpanQueue(SpanProcessor):
    """A bounded queue of ended, sampled spans, exported in batches by a daemon thread.

    The thread wakes every `delay_s`, or as soon as `max_batch_size` spans are waiting, and
    exports everything queued, at most `max_batch_size` spans a call. Exports (the thread's,
    `force_flush`'s and `shutdown`'s) are serialized by a lock: the exporter need not be
    thread-safe.
    """

    dropped: int  # spans dropped because the queue was full, since start

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 4096,
        max_batch_size: int = 512,
        delay_s: float = 1.0,
        export_timeout_s: float = 5.0,
    ) -> None:
        if max_queue_size < 1 or max_batch_size < 1:
            raise ValueError("max_queue_size and max_batch_size must be positive")
        self._exporter = exporter
        self._queue: deque[ReadableSpan] = deque()
        self._max_queue_size = max_queue_size
        self._limit = max_queue_size  # 0 once shut down: `on_end` then finds the queue full
        self._batch = min(max_batch_size, max_queue_size)
        self._delay_s = delay_s
        self._export_timeout_s = export_timeout_s
        self._closed = False
        self.dropped = 0
        self._dropped_warned = 0  # `dropped` at the last warning
        self._drop_warned_at = -math.inf
        self._error_warned_at = -math.inf
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = self._start()
        # a forked child has no export thread, and its copy of the lock may be held by a
        # thread that did not survive the fork: it starts afresh (`_after_fork`)
        weak_reinit = weakref.WeakMethod(self._after_fork)

        def after_in_child() -> None:
            reinit = weak_reinit()
            if reinit is not None:
                reinit()

        os.register_at_fork(after_in_child=after_in_child)

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
        thread.start()
        return thread

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queue.clear()
        self.dropped = self._dropped_warned = 0
        self._drop_warned_at = self._error_warned_at = -math.inf
        if not self._closed:
            self._thread = self._start()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        """Nothing: spans are queued when they end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue `span` if sampled; drop it if the queue is full. Never blocks.

        Runs for every span on the request path: kept to the fewest operations. `& 1` is
        `trace_flags.sampled` (`TraceFlags.SAMPLED`) without that property's call.
        """
        if span.context.trace_flags & 1:
            queue = self._queue
            if len(queue) < self._limit:
                queue.append(span)
                if len(queue) >= self._batch and not self._wake.is_set():
                    self._wake.set()
            else:
                self._drop()

    def _drop(self) -> None:
        if self._closed:  # `_limit` is 0 after shutdown: those spans are not counted
            return
        self.dropped += 1
        now = time.monotonic()
        if now - self._drop_warned_at >= WARN_EVERY:
            self._drop_warned_at = now
            count, self._dropped_warned = self.dropped - self._dropped_warned, self.dropped
            log.warning(
                "%d span(s) dropped: the trace export queue is full (%d spans), "
                "the collector is slow or down (%d dropped since start)",
                count,
                self._max_queue_size,
                self.dropped,
            )

    def _work(self) -> None:
        while not self._closed:
            wake = self._wake
            if len(self._queue) < self._batch:  # else a full batch waits already
                wake.wait(self._delay_s)
            wake.clear()  # before exporting: a wake-up while exporting is not lost
            if self._closed:
                return
            if self._queue:
                with self._lock:
                    self._export(math.inf, stop_if_closed=True)

    def _export(self, deadline: float, *, stop_if_closed: bool = False) -> bool:
        """Export the spans queued now, oldest first, in batches; the caller holds the lock.

        False if stopped before the last batch: past `deadline`, or shut down (if asked).
        """
        queue = self._queue
        popleft = queue.popleft
        left = len(queue)
        token = otel_context.attach(
            otel_context.set_value(_SUPPRESS, True) if _SUPPRESS else otel_context.get_current()
        )
        try:
            while left > 0:
                if (stop_if_closed and self._closed) or time.monotonic() > deadline:
                    return False
                count = min(left, self._batch)
                left -= count
                batch = [popleft() for _ in range(count)]
                try:
                    # a FAILURE result is not warned of here: the exporter warns itself
                    self._exporter.export(batch)
                except Exception as error:
                    self._export_failed(error, count)
            return True
        finally:
            otel_context.detach(token)

    def _export_failed(self, error: Exception, count: int) -> None:
        now = time.monotonic()
        if now - self._error_warned_at >= WARN_EVERY:
            self._error_warned_at = now
            log.warning(
                "trace export raised %s: %s; %d span(s) dropped",
                type(error).__name__,
                error,
                count,
                exc_info=error,
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued now, on this thread.

        False if shut down, or if `timeout_millis` ran out before the last batch was exported.
        """
        if self._closed:
            return False
        timeout = min(max(0.0, timeout_millis / 1000), threading.TIMEOUT_MAX)
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            return self._export(deadline)
        finally:
            self._lock.release()

    def shutdown(self) -> None:
        """Stop the thread, export what is left, shut the exporter down; idempotent.

        Waiting for the thread and the last export take at most about `export_timeout_s`
        (plus one export call in progress at the deadline); the exporter is shut down anyway.
        """
        if self._closed:
            return
        self._closed = True  # before `_limit`: `_drop` must find it set
        self._limit = 0
        deadline = time.monotonic() + self._export_timeout_s
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self._export_timeout_s)
        if self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._export(deadline)
            finally:
                self._lock.release()
        self._exporter.shutdown()
