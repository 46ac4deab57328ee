"""The demo's sample services, one server per instance, so that one can be stopped or slowed.

`bff demo` runs every instance on its own (a `RunningServices` each): stopping users' first
instance leaves the second serving, which is how a user sees the pool fail over; stopping
reviews' only instance shows partial data. An instance keeps its port across restarts, so the
gateway's pool finds it again by itself. A restarted instance starts from the seeded data.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from services import SERVICE_NAMES, RunningServices, ServiceSpec
from services.common import ServiceOptions


class FleetError(Exception):
    """An instance that does not exist, or cannot be started again."""


@dataclass
class DemoInstance:
    name: str
    index: int
    url: str
    latency: float = 0.0
    failure_rate: float = 0.0
    running: RunningServices | None = None

    @property
    def up(self) -> bool:
        return self.running is not None

    def describe(self) -> dict[str, Any]:
        return {
            "service": self.name,
            "instance": self.index,
            "url": self.url,
            "state": "up" if self.up else "down",
            "latency_ms": round(self.latency * 1000, 3),
            "failure_rate": self.failure_rate,
        }


def _serve(name: str, port: int, options: ServiceOptions) -> RunningServices:
    return RunningServices([ServiceSpec(name, options)], {name: [port]}).start()


class DemoFleet:
    """Every sample service, `instances[name]` instances of it (default one)."""

    def __init__(self, instances: Mapping[str, int] | None = None) -> None:
        self.counts = {name: (instances or {}).get(name, 1) for name in SERVICE_NAMES}
        self.instances: list[DemoInstance] = []
        self._lock = threading.Lock()  # one start or stop at a time

    @property
    def urls(self) -> dict[str, list[str]]:
        urls: dict[str, list[str]] = {}
        for instance in self.instances:
            urls.setdefault(instance.name, []).append(instance.url)
        return urls

    def start(self) -> Self:
        try:
            for name, count in self.counts.items():
                for index in range(count):
                    running = _serve(name, 0, ServiceOptions())
                    self.instances.append(
                        DemoInstance(name, index, running.url(name), running=running)
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def find(self, name: str, index: int) -> DemoInstance:
        for instance in self.instances:
            if instance.name == name and instance.index == index:
                return instance
        known = ", ".join(f"{i.name}/{i.index}" for i in self.instances)
        raise FleetError(f"no instance {name}/{index}; the demo runs {known}")

    def set(
        self, name: str, index: int, *, up: bool, latency: float = 0.0, failure_rate: float = 0.0
    ) -> DemoInstance:
        """Stop the instance, and unless `up` is false start it again with these faults."""
        options = ServiceOptions(latency=latency, failure_rate=failure_rate)  # checks them
        with self._lock:
            instance = self.find(name, index)
            if instance.running is not None:
                instance.running.stop()
                instance.running = None
            instance.latency = instance.failure_rate = 0.0
            if up:
                port = int(instance.url.rsplit(":", 1)[1])
                try:
                    instance.running = _serve(name, port, options)
                except (OSError, RuntimeError) as error:
                    raise FleetError(f"{name}/{index} could not start again: {error}") from None
                instance.latency, instance.failure_rate = latency, failure_rate
            return instance

    def stop(self) -> None:
        for instance in self.instances:
            if instance.running is not None:
                instance.running.stop()
                instance.running = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
