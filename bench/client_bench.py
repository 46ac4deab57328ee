"""Micro-benchmark of upstream HTTP clients: CPU per request, the number that picked ours.

The gateway makes several upstream calls per GraphQL request, so the client's CPU per call is
a large share of what a request costs. This measures it for each candidate client against one
sample service (`catalog`, run as a subprocess so that this process runs only the client), on
uvloop like the gateway:

    GET /products?ids=1,2,...,20 with the query given as params, body read and JSON-decoded

first sequentially (one request at a time), then at concurrency 32 (`asyncio.gather` of 32
requests, repeated). CPU is `time.process_time()` of this process divided by the requests
made; each figure is the best of `--repeat` runs, the usual way to take noise out of a
micro-benchmark. When two cores are usable, the client and the service are pinned to
different ones.

Candidates (one absent library is reported as skipped, not as a failure):

- `httpx`: `httpx.AsyncClient` over its own pool (what the gateway used before);
- `httpx+aiohttp`: httpx's API over the `httpx-aiohttp` transport;
- `aiohttp`: an `aiohttp.ClientSession` with one `TCPConnector`;
- `floor-raw`: the benchmark floor's GET-only client (`bench.floor.RawUpstream`), the
  reference: no params encoding, no limit, no header access;
- `bff-connections`: `bff.upstream.connections.ConnectionPool`, our keep-alive client on
  asyncio protocols and httptools, the request encoded by `build_request`;
- `bff-pool`: the whole `UpstreamPool.request` the resolvers call: the above plus the
  balancer, the total time budget, error translation and the response object.

Run: `python -m bench.client_bench` (`--help` for the counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bff.upstream import Instance, UpstreamPool
from bff.upstream.connections import ConnectionPool
from bff.upstream.request import build_request

PATH = "/products"
PARAMS = {"ids": ",".join(str(i) for i in range(1, 21))}
CONCURRENCY = 32
MAX_CONNECTIONS = 100
TIMEOUT = 5.0

Get = Callable[[], Awaitable[Any]]


@dataclass
class Candidate:
    name: str
    get: Get
    close: Callable[[], Awaitable[None]]


# --- candidates: each builds its client inside the running loop -------------------------------


async def httpx_client(url: str) -> Candidate:
    import httpx

    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    client = httpx.AsyncClient(
        base_url=url, limits=limits, timeout=httpx.Timeout(TIMEOUT, connect=0.5), trust_env=False
    )

    async def get() -> Any:
        response = await client.get(PATH, params=PARAMS)
        return orjson.loads(response.content)

    return Candidate("httpx", get, client.aclose)


async def httpx_aiohttp_client(url: str) -> Candidate:
    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS))
    client = httpx.AsyncClient(
        base_url=url,
        transport=AiohttpTransport(client=session),
        timeout=httpx.Timeout(TIMEOUT, connect=0.5),
        trust_env=False,
    )

    async def get() -> Any:
        response = await client.get(PATH, params=PARAMS)
        return orjson.loads(response.content)

    async def close() -> None:
        await client.aclose()
        await session.close()

    return Candidate("httpx+aiohttp", get, close)


async def aiohttp_client(url: str) -> Candidate:
    import aiohttp

    session = aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=TIMEOUT, connect=0.5),
    )

    async def get() -> Any:
        async with session.get(PATH, params=PARAMS) as response:
            return orjson.loads(await response.read())

    return Candidate("aiohttp", get, session.close)


async def floor_raw(url: str) -> Candidate:
    from bench.floor import RawUpstream

    client = RawUpstream(url)
    path_and_query = f"{PATH}?ids={PARAMS['ids']}"

    async def get() -> Any:
        return await client.get(path_and_query)

    return Candidate("floor-raw", get, client.aclose)


async def bff_connections(url: str) -> Candidate:
    pool = ConnectionPool(url, limit=MAX_CONNECTIONS, connect_timeout=0.5)
    loop = asyncio.get_running_loop()

    async def get() -> Any:
        request = build_request("GET", PATH, params=PARAMS)
        _, _, body = await pool.send(request, loop.time() + TIMEOUT)
        return orjson.loads(body)

    return Candidate("bff-connections", get, pool.aclose)


async def bff_pool(url: str) -> Candidate:
    pool = UpstreamPool(
        "catalog", [Instance(url)], total_timeout=TIMEOUT, max_connections=MAX_CONNECTIONS
    )

    async def get() -> Any:
        return (await pool.request("GET", PATH, params=PARAMS)).json()

    return Candidate("bff-pool", get, pool.aclose)


CANDIDATES: dict[str, tuple[Callable[[str], Awaitable[Candidate]], tuple[str, ...]]] = {
    "httpx": (httpx_client, ("httpx",)),
    "httpx+aiohttp": (httpx_aiohttp_client, ("httpx", "aiohttp", "httpx_aiohttp")),
    "aiohttp": (aiohttp_client, ("aiohttp",)),
    "floor-raw": (floor_raw, ("httptools",)),
    "bff-connections": (bff_connections, ("httptools",)),
    "bff-pool": (bff_pool, ("httptools",)),
}


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    seq_us: float  # CPU µs per request, one at a time
    conc_us: float  # CPU µs per request, CONCURRENCY at a time
    seq_rps: float  # requests per wall second, one at a time
    conc_rps: float


async def sequential(get: Get, n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await get()
    return time.process_time() - cpu, time.perf_counter() - wall


async def concurrent(get: Get, rounds: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(get() for _ in range(CONCURRENCY)))
    return time.process_time() - cpu, time.perf_counter() - wall


async def measure(build: Callable[[str], Awaitable[Candidate]], url: str, args: Any) -> Result:
    candidate = await build(url)
    try:
        first = await candidate.get()
        assert len(first["items"]) == 20, first
        await sequential(candidate.get, args.requests // 10)  # warm up
        await concurrent(candidate.get, max(1, args.rounds // 10))
        seq = min([await sequential(candidate.get, args.requests) for _ in range(args.repeat)])
        conc = min([await concurrent(candidate.get, args.rounds) for _ in range(args.repeat)])
    finally:
        await candidate.close()
    n_conc = args.rounds * CONCURRENCY
    return Result(
        candidate.name,
        seq_us=seq[0] / args.requests * 1e6,
        conc_us=conc[0] / n_conc * 1e6,
        seq_rps=args.requests / seq[1],
        conc_rps=n_conc / conc[1],
    )


# --- the service -----------------------------------------------------------------------------


@contextlib.contextmanager
def catalog_service(core: int | None) -> Iterator[str]:
    """`python -m services catalog` on a free port, pinned to `core`; yields its URL."""
    command = [sys.executable, "-m", "services", "catalog", "--port-base", "0"]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = ""
        for line in process.stdout:
            if line.startswith("catalog "):
                url = line.split()[1]
            if line.strip() == "ready":
                break
        if not url:
            raise RuntimeError("the catalog service did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def pick_cores() -> tuple[int | None, int | None]:
    """(client core, service core), or Nones when pinning is not possible."""
    if not hasattr(os, "sched_getaffinity") or not _has("taskset"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[1]) if len(cores) >= 2 else (None, None)


def _has(program: str) -> bool:
    return any(os.access(os.path.join(d, program), os.X_OK) for d in os.get_exec_path())


def _installed(modules: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def table(results: list[Result], skipped: list[str]) -> str:
    best_seq = min(r.seq_us for r in results)
    best_conc = min(r.conc_us for r in results)
    lines = [
        f"| client | CPU µs/req, sequential | CPU µs/req, concurrency {CONCURRENCY} "
        "| req/s sequential | req/s concurrent |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.seq_us:.0f} ({r.seq_us / best_seq:.1f}x) "
            f"| {r.conc_us:.0f} ({r.conc_us / best_conc:.1f}x) "
            f"| {r.seq_rps:.0f} | {r.conc_rps:.0f} |"
        )
    lines += [f"| {name} | skipped: not installed | | | |" for name in skipped]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests (3000)")
    parser.add_argument("--rounds", type=int, default=100, help=f"rounds of {CONCURRENCY} (100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument(
        "--only", action="append", choices=sorted(CANDIDATES), help="measure just these"
    )
    args = parser.parse_args(argv)

    import uvloop

    client_core, service_core = pick_cores()
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})
    names = args.only or list(CANDIDATES)
    results: list[Result] = []
    skipped: list[str] = []
    with catalog_service(service_core) as url:
        for name in names:
            build, modules = CANDIDATES[name]
            if not _installed(modules):
                skipped.append(name)
                continue
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                results.append(runner.run(measure(build, url, args)))
            print(f"measured {name}", file=sys.stderr, flush=True)
    pinned = f"client on core {client_core}, service on core {service_core}"
    print(f"GET {PATH}?ids=1..20 on uvloop; {pinned if client_core is not None else 'unpinned'}")
    print(table(results, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
