"""`Upstreams`: every configured pool, built once per gateway process and closed with it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from bff.upstream.instance import Instance
from bff.upstream.pool import UpstreamPool

if TYPE_CHECKING:
    from bff.config import Settings


class Upstreams(Mapping[str, UpstreamPool]):
    def __init__(self, pools: Mapping[str, UpstreamPool]) -> None:
        self._pools = dict(pools)

    @classmethod
    def from_settings(cls, settings: Settings) -> Upstreams:
        pools = {}
        for name, upstream in settings.upstreams.items():
            instances = [Instance(i.url, i.weight, i.zone) for i in upstream.instances]
            pools[name] = UpstreamPool(
                name,
                instances,
                balancer=upstream.balancer,
                zone=settings.server.zone,
                connect_timeout=upstream.timeout.connect,
                total_timeout=upstream.timeout.total,
                max_connections=upstream.max_connections,
                required=upstream.required,
                max_body=upstream.max_response_body,
            )
        return cls(pools)

    def __getitem__(self, name: str) -> UpstreamPool:
        return self._pools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
