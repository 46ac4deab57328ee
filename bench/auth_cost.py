"""`python -m bench.auth_cost`: the gateway's CPU per request in each token path, and in a
rate-limit hit on memory and on Redis.

The token kinds' targets of `bench.run` differ from the plain gateway in two steps only: the
token path (`Authenticator.authenticate`) and, because `redis.url` is set, where rate limits
live (and metering, which writes once a second, whatever the traffic). This measures those
steps alone, in microseconds of CPU per call, where the end-to-end cells see a Dashboard of
about 2 ms of CPU through the noise of a shared machine:

- `jwt-memory`: a JWT, revocations in the memory store (the plain `gateway`);
- `jwt-redis`: a JWT, revocations read from Redis in the background (`gateway-jwt-redis`);
- `opaque-redis`: an opaque token whose claims live in Redis (`gateway-opaque`);
- `opaque-redis-uncached`: the same with every call a miss of the gateway's one-second cache:
  what a request costs when many clients each send less than a request a second (the
  benchmark's single client never shows it);
- `hit-memory`, `hit-redis`: one rate-limit hit, `--batch` of them to a turn of the event loop
  (under load, several requests arrive in one turn and share one Redis call).

Each runs on a uvloop event loop for `--duration` seconds of wall time with the real clocks,
yielding to the loop every few calls as a busy gateway does, so the caches expire and the
background reads happen as in the gateway (an opaque token is fetched again once a second, the
revocation list is read twice a second): their cost is in the average. CPU is this process's
(`time.process_time`; Redis's own work is not the gateway's). The paths are measured in
`--rounds` interleaved rounds; each figure is the median of its rounds.

Redis is a private redis-server on the other core when one is installed (as in `bench.run`),
else `REDIS_URL`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

if not __package__:  # run as `python bench/auth_cost.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from bench.procs import Children, detect_pinning
from bench.stack import redis_for_auth
from bff.auth import Principal
from bff.auth.authenticator import Authenticator
from bff.auth.opaque import OpaqueTokens
from bff.auth.revocation import Revocations
from bff.auth.store import TokenStore
from bff.auth.store_memory import MemoryTokenStore
from bff.auth.store_redis import RedisTokenStore
from bff.auth.tokens import TokenSigner, TokenVerifier
from bff.config import Settings
from bff.limits import MemoryRateStore, RateStore, RedisRateStore
from bff.limits.gcra import Rule
from bff.shared_state import SharedState

ROOT = Path(__file__).resolve().parent.parent
ISSUER, AUDIENCE, SECRET = "bff", "bff-clients", "bench-auth-cost-secret-of-32-bytes!"
YIELD_EVERY = 32  # calls between two turns of the loop
Call = Callable[[], Awaitable[object]]


def authenticator(store: TokenStore) -> Authenticator:
    verifier = TokenVerifier("HS256", SECRET, ISSUER, AUDIENCE)
    return Authenticator(
        issuer=ISSUER,
        verifier=verifier,
        revocations=Revocations(store),
        opaque=OpaqueTokens(store, ISSUER),
        trusted=None,
    )


async def token_paths(redis: Redis) -> dict[str, Call]:
    """One call per token path, each on its own store, as the gateways of `bench.run` are."""
    signer = TokenSigner("HS256", SECRET, ISSUER, AUDIENCE)
    # as the gateway issues them: with the refresh family, which is checked for revocation too
    jwt, _ = signer.issue("1", ["orders:read"], ttl=3600, extra={"fam": "family"})
    memory = authenticator(MemoryTokenStore())
    jwt_redis = authenticator(RedisTokenStore(redis, "bffbench:cost-jwt:"))
    opaque_store = RedisTokenStore(redis, "bffbench:cost-opaque:")
    opaque = authenticator(opaque_store)
    assert opaque.opaque is not None
    token, _ = await opaque.opaque.issue("1", ["orders:read"], [], 3600, "family")
    uncached = authenticator(opaque_store)
    # a clock at which every cached entry has already expired: each call reads Redis
    uncached.opaque = OpaqueTokens(opaque_store, ISSUER, monotonic=lambda: math.inf)

    async def check(auth: Authenticator, token: str) -> Principal:
        return await auth.authenticate(token)

    return {
        "jwt-memory": lambda: check(memory, jwt),
        "jwt-redis": lambda: check(jwt_redis, jwt),
        "opaque-redis": lambda: check(opaque, token),
        "opaque-redis-uncached": lambda: check(uncached, token),
    }


def hits(store: RateStore, batch: int) -> Call:
    """`batch` hits of one client queued in one turn of the loop, awaited together."""
    rule = Rule(1_000_000_000, 1.0)

    async def call() -> None:
        if batch == 1:
            await store.hit("1", rule)
        else:
            await asyncio.gather(*(store.hit("1", rule) for _ in range(batch)))

    return call


async def per_call_us(call: Call, seconds: float, per_call: int = 1) -> float:
    """CPU microseconds per unit of work (`per_call` units per call) over `seconds`."""
    for _ in range(YIELD_EVERY):  # warm: caches filled, connections open
        await call()
    calls = 0
    cpu = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(YIELD_EVERY):
            await call()
        calls += YIELD_EVERY
        await asyncio.sleep(0)  # the background reads run here, as between requests
    return (time.process_time() - cpu) / (calls * per_call) * 1e6


async def measure(redis_url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    shared = SharedState.from_settings(Settings.model_validate({"redis": {"url": redis_url}}))
    assert shared.redis is not None
    paths = await token_paths(shared.redis)
    batch = args.batch
    stores: dict[str, tuple[Call, int]] = {
        **{name: (call, 1) for name, call in paths.items()},
        "hit-memory": (hits(MemoryRateStore(), batch), batch),
        "hit-redis": (hits(RedisRateStore(shared.redis, "bffbench:cost-rl:"), batch), batch),
    }
    results: dict[str, list[float]] = {name: [] for name in stores}
    names = list(stores)
    for index in range(args.rounds):
        for name in names if index % 2 == 0 else reversed(names):
            call, per_call = stores[name]
            results[name].append(await per_call_us(call, args.duration, per_call))
    await shared.aclose()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.auth_cost", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per path (2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--batch", type=int, default=4, help="rate-limit hits per loop turn (4)")
    args = parser.parse_args(argv)
    pinning = detect_pinning()
    with (
        tempfile.TemporaryDirectory(prefix="bff-auth-cost-") as tmp,
        Children(Path(tmp), ROOT) as children,
    ):
        redis = redis_for_auth(children, pinning)
        if redis is None:
            print("bench.auth_cost: no Redis: install redis-server or set REDIS_URL")
            return 2
        if pinning.target_core is not None:
            os.sched_setaffinity(0, {pinning.target_core})
        import uvloop

        results = uvloop.run(measure(redis.url, args))
    print(f"CPU µs per call, median of {args.rounds} interleaved rounds of {args.duration:g} s")
    print(f"({pinning.reason}; Redis: {redis.where}; rate-limit hits {args.batch} per loop turn)\n")
    print("| path | CPU µs per call | rounds |")
    print("|---|---|---|")
    for name, values in results.items():
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {statistics.median(values):.2f} | {rounds} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
