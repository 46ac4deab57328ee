"""The gateway's CPU per request as a count of instructions, which machine load cannot move.

    python -m bench.instructions [--workloads dashboard,product,passthrough] [--requests 100]

Wall-clock benchmarks on a shared machine move by tens of percent between two runs; the number
of instructions a request executes does not. This runner starts the sample services (0 ms
latency) in a child process, writes the bench config (`bench.stack.gateway_config`: a JWT,
rate limits, query limits) plus what the wire bench also has on (metrics, the JSON access
line at `info`, 1 % trace sampling exported over OTLP/HTTP to a sink in this runner) and a
passthrough route, and then, once per workload, runs a gateway process under
`valgrind --tool=callgrind`.

That process builds the app (`bff.app.create_app`), runs its lifespan, and calls the ASGI app
directly (no socket, no uvicorn: what is counted is the gateway's own code), first
`--warmup` requests (caches, pools and lazily built plans filled), then `--requests`
requests, one after the other. Only the second batch is counted: it runs inside a call made
through `ctypes`, and callgrind collects only inside libffi's `ffi_call`
(`--collect-atstart=no --toggle-collect=ffi_call`), which nothing else in the gateway calls.
Start-up, imports and warm-up cost nothing in the count. The OTLP export thread is not
counted either (collection follows the thread that entered `ffi_call`); at 1 % sampling it
encodes about one trace per hundred requests.

`PYTHONHASHSEED` and `random` are fixed and the upstreams' health probes (timers, no request's
work) are set an hour apart, so what runs depends little on the wall clock; what still does
(the metering flush once a second, the access line's timestamp formatted once a second) is a
small share. The 1 % sample is a fixed set of requests for a given code path.
`--redis URL` adds a `redis` section (rate limits, APQ and metering in that Redis, as
`bench.auth_targets`'s `gateway-redis`) and `--login` takes the Dashboard's token from the
gateway's own `POST /auth/token` (the sample admin) instead of `bench.stack.sign_token`: the
two sides of a Redis-less / Redis-backed comparison, each counted alone.
`--keep DIR` keeps callgrind's output files for `callgrind_annotate` (the C-level view; for
the Python-level view, `bench.profile`). `--save` writes `bench/results/instructions-<UTC
time>-<commit>.md`. `--workloads dashboard,dashboard-cached` counts the Dashboard uncached
and with the response cache warm (over services that answer `max-age=600` with an ETag); the
default is the three uncached workloads.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import yaml

from bench.openapi import DASHBOARD_BODY as OPENAPI_BODY
from bench.openapi import shop_sources
from bench.procs import Children, Pinning
from bench.sources import SAME_DATA
from bench.stack import SERVICES, gateway_config, service_urls_of, sign_token, start_services
from bench.telemetry import Sink
from bench.workloads import DASHBOARD, PRODUCT, apollo_dashboard

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ROUTE = {"name": "catalog", "upstream": "catalog", "methods": ["GET"], "auth": "public"}
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


@dataclass(frozen=True)
class Request:
    """One workload as the ASGI request the gateway receives."""

    name: str
    method: str
    path: str
    body: bytes
    needs_token: bool
    description: str
    cached: bool = False  # cache on, over services whose answers may be kept (warm when counted)
    openapi: bool = False  # the graph is the shop's OpenAPI documents (`bench.sources`)
    floor: str | None = None  # counts the floor (`bench.floor`); the gateway workload it floors

    @property
    def setup(self) -> tuple[bool, bool]:
        """The config this workload runs on: (cached, openapi)."""
        return self.cached, self.openapi


WORKLOADS = {
    "dashboard": Request(
        "dashboard",
        "POST",
        "/graphql",
        orjson.dumps({"query": DASHBOARD.format(first=20)}),
        True,
        "the SPEC section 3 Dashboard, first: 20, with a JWT (5 upstream calls)",
    ),
    "dashboard-cached": Request(
        "dashboard-cached",
        "POST",
        "/graphql",
        orjson.dumps({"query": DASHBOARD.format(first=20)}),
        True,
        "the Dashboard with the response cache on and warm (0 upstream calls)",
        cached=True,
    ),
    "dashboard-apollo": Request(
        "dashboard-apollo",
        "POST",
        "/graphql",
        apollo_dashboard().body,
        True,
        "the Dashboard as Apollo Client sends it (fragments, __typename, @include; 5 calls)",
    ),
    "dashboard-openapi": Request(
        "dashboard-openapi",
        "POST",
        "/graphql",
        OPENAPI_BODY,
        True,
        "the Dashboard from the shop's OpenAPI sources, as bench.sources asks it (5 calls)",
        openapi=True,
    ),
    "dashboard-same-data": Request(
        "dashboard-same-data",
        "POST",
        "/graphql",
        orjson.dumps({"query": SAME_DATA}),
        True,
        "the code-first graph asked for the OpenAPI Dashboard's data (bench.sources; 5 calls)",
    ),
    "product": Request(
        "product",
        "POST",
        "/graphql",
        orjson.dumps({"query": PRODUCT.format(id=42)}),
        False,
        '{ product(id: "42") { name } }, no token (1 upstream call)',
    ),
    "floor-dashboard": Request(
        "floor-dashboard",
        "POST",
        "/dashboard",
        b"{}",
        False,
        "the floor's Dashboard: the same 5 upstream calls and answer, no gateway",
        floor="dashboard",
    ),
    "floor-product": Request(
        "floor-product",
        "POST",
        "/product",
        b"{}",
        False,
        "the floor's product lookup: the same upstream call and answer, no gateway",
        floor="product",
    ),
    "typename": Request(
        "typename",
        "POST",
        "/graphql",
        orjson.dumps({"query": "{ __typename }"}),
        False,
        "{ __typename }: the fixed cost of a GraphQL request (no upstream call)",
    ),
    "passthrough": Request(
        "passthrough",
        "GET",
        "/api/catalog/products/1",
        b"",
        False,
        "GET /api/catalog/products/1, REST passthrough (1 upstream call)",
    ),
}


def bench_config(service_urls: dict[str, str], sink: str) -> dict[str, Any]:
    """The bench config with every feature of the wire bench on, and a passthrough route."""
    config = gateway_config(service_urls, secrets.token_urlsafe(32))
    for upstream in config["upstreams"].values():
        # Probes run on a timer, so under callgrind (50 x slower) their share of a count would
        # follow the wall clock; they are no request's work. One probe at start-up still runs.
        upstream["health_check"] = {"interval": "1h"}
    config["telemetry"] = {"exporter": "otlp_http", "endpoint": sink, "sample_ratio": 0.01}
    config["logging"] = {"level": "info", "format": "json"}
    config["routes"] = [ROUTE]
    return config


def scope_of(request: Request, token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")]
    if request.body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(request.body)).encode()),
        ]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": b"id=42" if request.path == "/product" else b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, request: Request, token: str | None) -> tuple[int, bytes]:
    """One request through the ASGI app: its status and body."""
    sent = False
    status = 0
    chunks: list[bytes] = []
    answered = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the client stays until it has the whole answer, as wrk does
            await answered
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False) and not answered.done():
                answered.set_result(None)

    await app(scope_of(request, token), receive, send)
    return status, b"".join(chunks)


def check(request: Request, status: int, body: bytes) -> None:
    if status != 200 or (request.path == "/graphql" and b'"errors"' in body):
        raise SystemExit(f"{request.name}: status {status}: {body[:300]!r}")


LOGIN = Request(
    "login",
    "POST",
    "/auth/token",
    orjson.dumps({"username": "user1", "password": "password1"}),
    False,
    "POST /auth/token for the sample admin",
)


async def login(app: Any) -> str:
    """An access token the gateway issued itself (what `bench.auth_targets` measures with)."""
    status, body = await call(app, LOGIN, None)
    if status != 200:
        raise SystemExit(f"login: status {status}: {body[:300]!r}")
    token: str = orjson.loads(body)["access_token"]
    return token


def inner(
    config_path: str,
    workload: str,
    token: str | None,
    warmup: int,
    requests: int,
    concurrency: int = 1,
) -> int:
    """The measured process (run under callgrind): warm up, then the counted loop."""
    from bff.app import create_app
    from bff.config import load_settings
    from bff.serving import loop_factory, tune_gc
    from bff.telemetry.logs import configure_logging

    random.seed(23)
    settings = load_settings(config_path)
    configure_logging(settings.logging.level, settings.logging.format)
    request = WORKLOADS[workload]
    app = floor_app(settings) if request.floor else create_app(settings)
    loop = loop_factory()()
    asyncio.set_event_loop(loop)
    started, stop = loop.create_future(), loop.create_future()

    async def lifespan_receive() -> dict[str, Any]:
        if not started.done():
            return {"type": "lifespan.startup"}
        await stop
        return {"type": "lifespan.shutdown"}

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set_result(None)
        elif message["type"].endswith("failed"):
            raise SystemExit(f"lifespan: {message}")

    lifespan = loop.create_task(app({"type": "lifespan"}, lifespan_receive, lifespan_send))
    loop.run_until_complete(started)
    if token == "login":
        token = loop.run_until_complete(login(app))
    token = token if request.needs_token else None

    async def one() -> None:
        check(request, *await call(app, request, token))

    async def batch(count: int) -> None:
        if concurrency == 1:  # one after the other, awaited here: no task or gather counted
            for _ in range(count):
                await one()
            return
        # `concurrency` requests in flight at once, as wrk's connections keep them
        for start in range(0, count, concurrency):
            await asyncio.gather(*(one() for _ in range(min(concurrency, count - start))))

    loop.run_until_complete(batch(warmup))
    tune_gc()
    # Counted: callgrind collects only inside ffi_call, i.e. inside this one callback.
    measured: Callable[[], None] = lambda: loop.run_until_complete(batch(requests))  # noqa: E731
    errors: list[BaseException] = []

    def guarded() -> None:  # an exception cannot cross a ctypes callback
        try:
            measured()
        except BaseException as error:
            errors.append(error)

    ctypes.CFUNCTYPE(None)(guarded)()
    if errors:
        raise errors[0]
    stop.set_result(None)
    loop.run_until_complete(lifespan)
    loop.close()
    return 0


def floor_app(settings: Any) -> Any:
    """The floor over the config's services, with the client `bench.run` gives it (`raw`)."""
    from bench.floor import UPSTREAMS, FloorApp, RawUpstream

    urls = {name: str(settings.upstreams[name].instances[0].url) for name in UPSTREAMS}
    return FloorApp({name: RawUpstream(url.rstrip("/")) for name, url in urls.items()})


def measure(
    config_path: Path,
    workload: str,
    token: str,
    warmup: int,
    requests: int,
    out_dir: Path,
    counted: bool = True,
    concurrency: int = 1,
) -> int:
    """Instructions the gateway executed for `requests` requests of `workload`."""
    out_file = out_dir / f"callgrind.{workload}.out"
    log_file = out_dir / f"valgrind.{workload}.log"
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=ffi_call",
        f"--callgrind-out-file={out_file}",
        f"--log-file={log_file}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--inner",
        str(config_path),
        "--workloads",
        workload,
        "--token",
        token,
        "--warmup",
        str(warmup),
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
    ]
    if not counted:
        argv = argv[argv.index(sys.executable) :]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env = {k: v for k, v in env.items() if not k.startswith("BFF_")}
    done = subprocess.run(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{workload}: the gateway exited {done.returncode}: {done.stderr[:3000]!r}"
        )
    if not counted:
        return 0
    found = COLLECTED.search(log_file.read_text())
    if found is None:
        raise SystemExit(f"{workload}: no instruction count in {log_file}")
    return int(found.group(1))


def write_config(
    children: Children,
    tmp: Path,
    sink: str,
    setup: tuple[bool, bool],
    redis: str | None,
    login: bool,
) -> tuple[Path, str]:
    """Services and the bench config for them; when cached (`setup[0]`), services whose
    answers may be kept (`max-age=600` and an ETag, as in `bench.cache`) and the response
    cache on; with openapi (`setup[1]`), the shop's OpenAPI sources as the graph; with
    `redis`, shared state there; with `login`, the token is one the gateway issues itself."""
    cached, openapi = setup
    if cached:
        argv = [sys.executable, "-m", "services", *SERVICES, "--port-base", "0"]
        argv += ["--host", "127.0.0.1", "--cache-control", "max-age=600", "--etag"]
        services = children.start("services-cacheable", argv)
    else:
        services = start_services(children, Pinning(None, None, "not pinned"), 0)
    config = bench_config(service_urls_of(services), sink)
    if cached:
        config["cache"] = {"enabled": True}
    if openapi:
        config.update(shop_sources())
    if redis:
        config["redis"] = {"url": redis, "key_prefix": f"bffbench:{secrets.token_hex(6)}:"}
        config["auth"]["access_ttl"] = "12h"
    path = tmp / f"bff{'-cached' if cached else ''}{'-openapi' if openapi else ''}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, "login" if login else sign_token(path)


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--workloads", default="dashboard,product,passthrough")
    parser.add_argument("--requests", type=int, default=100, help="counted requests (100)")
    parser.add_argument("--warmup", type=int, default=50, help="requests before counting (50)")
    parser.add_argument("--keep", type=Path, help="keep callgrind's output files here")
    parser.add_argument("--save", action="store_true", help="write the table to bench/results")
    parser.add_argument(
        "--native", action="store_true", help="run without valgrind (a check; counts nothing)"
    )
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once (1)")
    parser.add_argument("--redis", metavar="URL", help="shared state in this Redis")
    parser.add_argument("--login", action="store_true", help="token from POST /auth/token")
    parser.add_argument("--inner", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        return inner(
            args.inner, args.workloads, args.token, args.warmup, args.requests, args.concurrency
        )
    if shutil.which("valgrind") is None:
        print(
            "valgrind is not on PATH (Debian/Ubuntu: apt-get install -y valgrind)", file=sys.stderr
        )
        return 2
    names = [name for name in args.workloads.split(",") if name]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    rows: list[tuple[str, int]] = []
    with tempfile.TemporaryDirectory() as tmp, Children(Path(tmp), ROOT) as children:
        sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
        configs = {
            setup: write_config(children, Path(tmp), sink_url, setup, args.redis, args.login)
            for setup in sorted({WORKLOADS[name].setup for name in names})
        }
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            config_path, token = configs[WORKLOADS[name].setup]
            total = measure(
                config_path,
                name,
                token,
                args.warmup,
                args.requests,
                out_dir,
                not args.native,
                args.concurrency,
            )
            rows.append((name, total))
            print(f"{name}: {total / args.requests:,.0f} instructions/request", flush=True)
    sink.shutdown()
    lines = [
        f"# Gateway instructions per request ({commit()})",
        "",
        f"callgrind, {args.requests} counted requests after {args.warmup} of warm-up, "
        "ASGI app called in-process, every feature of the bench config on"
        + (f", {args.concurrency} requests at once" if args.concurrency > 1 else "")
        + (", shared state in Redis" if args.redis else "")
        + (", token from POST /auth/token" if args.login else "")
        + ".",
        "",
        "| workload | instructions/request | what |",
        "|---|---:|---|",
        *(
            f"| {name} | {total / args.requests:,.0f} | {WORKLOADS[name].description} |"
            for name, total in rows
        ),
    ]
    counts = dict(rows)
    floored = [
        (name, WORKLOADS[name].floor, total)
        for name, total in rows
        if counts.get(WORKLOADS[name].floor or "")
    ]
    if floored:
        lines += [
            "",
            "By instructions, floor / gateway (what `bench.run`'s gateway/floor is by CPU):",
        ]
        lines += [f"- {gateway}: {total / counts[gateway]:.2f}" for name, gateway, total in floored]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.save:
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"instructions-{stamp}-{commit()}.md"
        path.write_text(report)
        print(f"saved {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
