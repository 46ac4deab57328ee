"""Metrics of several worker processes in one scrape: prometheus-client's multiprocess mode.

The supervisor of `bff serve --workers N` calls `shared_metrics_dir` before it starts the
workers: each worker then writes its metric values to files in that directory (the variable is
read when prometheus-client is imported, which is why the supervisor sets it and not the
workers), and a scrape of any worker adds all of them up. A dead worker's gauges are dropped
(`worker_exited`); its counters stay, so totals never go down. The directory is removed when
the supervisor stops. An operator's own `PROMETHEUS_MULTIPROC_DIR` is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A fresh metrics directory in the environment while the workers run."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    path = tempfile.mkdtemp(prefix="bff-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int) -> None:
    """Forget the live gauges of a worker that is gone."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
