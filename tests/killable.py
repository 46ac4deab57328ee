"""Instances of one sample service that a test can stop and start again on the same port.

Each instance runs on its own `RunningServices` (its own thread and loop), so stopping one
closes its listening socket and its connections for real, as a crashed process would, and
starting it again binds the same port, as a restarted process would.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from services import RunningServices, ServiceOptions, ServiceSpec


class KillableInstances:
    def __init__(self, service: str, count: int, options: ServiceOptions | None = None) -> None:
        self.service = service
        self.options = options or ServiceOptions()
        self._running: list[RunningServices | None] = [None] * count
        self.urls: list[str] = []
        self._ports: list[int] = []

    def start(self) -> Self:
        for index in range(len(self._running)):
            self._start(index, port=0)
        return self

    def kill(self, index: int) -> None:
        running = self._running[index]
        if running is not None:
            running.stop()
            self._running[index] = None

    def restart(self, index: int) -> None:
        self.kill(index)
        self._start(index, port=self._ports[index])

    def stop(self) -> None:
        for index in range(len(self._running)):
            self.kill(index)

    def _start(self, index: int, port: int) -> None:
        spec = ServiceSpec(self.service, self.options)
        running = RunningServices([spec], {self.service: [port]}).start()
        self._running[index] = running
        url = running.url(self.service)
        if index < len(self.urls):
            self.urls[index] = url
        else:
            self.urls.append(url)
            self._ports.append(int(url.rsplit(":", 1)[1]))

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
