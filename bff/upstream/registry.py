"""`Upstreams`: every configured pool, built once per gateway process and closed with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar, overload

from bff.closing import close_every
from bff.upstream.health import HealthSettings
from bff.upstream.instance import Instance
from bff.upstream.pool import UpstreamPool
from bff.upstream.response_cache import ResponseCache
from bff.upstream.tls import tls_for
from bff.upstream.transport import Transport

if TYPE_CHECKING:
    from bff.config import Settings


T = TypeVar("T")


class Upstreams(Mapping[str, UpstreamPool]):
    def __init__(self, pools: Mapping[str, UpstreamPool]) -> None:
        self._pools = dict(pools)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        observe: Callable[[Transport, str], Transport] | None = None,
        on_shared: Callable[[str], None] | None = None,
        cache: ResponseCache | None = None,
    ) -> Upstreams:
        """Every pool, each upstream's TLS context built here once (a `verify: false` warns);
        `on_shared(upstream)` counts each call shared with an identical one in flight; `cache`
        is the response cache all pools share (`cache.enabled`)."""
        pools = {}
        for name, upstream in settings.upstreams.items():
            instances = [Instance(i.url, i.weight, i.zone) for i in upstream.instances]
            check = upstream.health_check
            pools[name] = UpstreamPool(
                name,
                instances,
                balancer=upstream.balancer,
                zone=settings.server.zone,
                connect_timeout=upstream.timeout.connect,
                total_timeout=upstream.timeout.total,
                max_connections=upstream.max_connections,
                max_queue=upstream.max_queue,
                required=upstream.required,
                attempts=upstream.retries.attempts,
                health=HealthSettings(
                    check.path,
                    check.interval,
                    check.timeout,
                    check.unhealthy_threshold,
                    check.healthy_threshold,
                ),
                consecutive_failures=upstream.outlier.consecutive_failures,
                ejection=upstream.outlier.ejection,
                observe=observe,
                max_body=upstream.max_response_body,
                tls=tls_for(name, upstream),
                dedupe=upstream.dedupe,
                cache_ttl=upstream.cache.ttl,
                response_headers=upstream.response_headers,
                cache=cache,
                on_shared=on_shared,
            )
        return cls(pools)

    def __getitem__(self, name: str) -> UpstreamPool:
        return self._pools[name]

    @overload
    def get(self, name: str, /) -> UpstreamPool | None: ...

    @overload
    def get(self, name: str, /, default: UpstreamPool | T) -> UpstreamPool | T: ...

    def get(self, name: str, /, default: object = None) -> object:
        """The dict's own `get` (the Mapping mixin's raises and catches a KeyError)."""
        return self._pools.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    async def start(self) -> None:
        """Check every instance of every pool once, then keep checking in the background."""
        await asyncio.gather(*(pool.start() for pool in self._pools.values()))

    async def stop(self) -> None:
        for pool in self._pools.values():
            await pool.stop()

    async def aclose(self) -> None:
        await close_every(pool.aclose for pool in self._pools.values())
