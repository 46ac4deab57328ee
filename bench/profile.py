"""Where the gateway's CPU goes: one workload under load, profiled inside the gateway.

    python -m bench.profile [--workload dashboard] [--concurrency 32] [--duration 10] [--cache]

Starts the sample services (0 ms latency) in a child process, serves the gateway in this
process's main thread under cProfile while `wrk` drives the workload, then prints the
functions with the most own time and the heaviest call paths (cumulative), and writes the
raw profile (`pstats`, readable by snakeviz or `python -m pstats`) next to the bench results.
cProfile slows Python code down unevenly (calls cost more than loops), so read the shares,
not the absolute times. `--cache` profiles a warm response cache (the services answer
`Cache-Control: max-age=600` with an ETag, as in `bench.cache`). `--openapi` profiles the
Dashboard served from the shop's OpenAPI documents (`bench.sources`' second target).

`--sampling` samples instead (py-spy, when installed: `pip install py-spy`), which does not
slow calls down: it prints each function's share of the samples, own and inclusive, and
writes the collapsed stacks (for flamegraph tools). A function's own share includes the C it
calls (`msgspec` decoding, `orjson`, a socket write) and, at a coroutine's `await`, freeing
what the awaited frame held.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.load import MISSING_WRK, run_wrk, write_script, wrk_path
from bench.openapi import DASHBOARD_BODY as OPENAPI_BODY
from bench.openapi import shop_sources
from bench.procs import Children, Pinning, free_port
from bench.stack import gateway_config, service_urls_of, sign_token, start_services
from bench.workloads import available

MISSING_PY_SPY = "--sampling needs py-spy (pip install py-spy)"

RESULTS = Path(__file__).parent / "results"
WARM_UP = 2.0  # seconds of load before the profiler starts: caches and pools filled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--workload", default="dashboard")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--output", type=Path, default=RESULTS / "profile.pstats")
    parser.add_argument("--cache", action="store_true", help="cache on, cacheable services")
    parser.add_argument("--sampling", action="store_true", help="py-spy instead of cProfile")
    parser.add_argument(
        "--openapi", action="store_true", help="the Dashboard from OpenAPI sources (bench.sources)"
    )
    args = parser.parse_args(argv)
    if wrk_path() is None:
        print(MISSING_WRK, file=sys.stderr)
        return 2
    sampler = py_spy_path() if args.sampling else None
    if args.sampling and sampler is None:
        print(MISSING_PY_SPY, file=sys.stderr)
        return 2
    stacks = args.output.with_suffix(".stacks")
    workload = available(1)[args.workload]

    from bff.app import create_app
    from bff.config import load_settings
    from bff.serving import bind, run, server_for, tune_gc, url_of

    with tempfile.TemporaryDirectory() as tmp, Children(Path(tmp), Path.cwd()) as children:
        flags = ("--cache-control", "max-age=600", "--etag") if args.cache else ()
        services = start_services(children, Pinning(None, None, "profile: not pinned"), 0, *flags)
        config_path = Path(tmp) / "bff.yaml"
        config = gateway_config(service_urls_of(services), secrets.token_urlsafe(32))
        if args.cache:
            config["cache"] = {"enabled": True}
        body = workload.body
        if args.openapi:
            config.update(shop_sources())
            body = OPENAPI_BODY
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        headers = {"content-type": "application/json"}
        if workload.needs_token or args.openapi:
            headers["authorization"] = f"Bearer {sign_token(config_path)}"
        script = write_script(Path(tmp) / "load.lua", body, headers)

        sock = bind("127.0.0.1", free_port())
        server = server_for(create_app(load_settings(str(config_path))))
        profiler = cProfile.Profile()

        def drive(loop: asyncio.AbstractEventLoop) -> None:
            while not server.started:
                time.sleep(0.01)
            url = f"{url_of(sock)}/graphql"
            run_wrk(url, script, concurrency=args.concurrency, duration=WARM_UP, prefix=[])
            if sampler is not None:
                spy = start_sampling(sampler, stacks, args.duration)
            else:
                loop.call_soon_threadsafe(profiler.enable)  # it profiles the calling thread
            result = run_wrk(
                url, script, concurrency=args.concurrency, duration=args.duration, prefix=[]
            )
            if sampler is not None:
                spy.wait()
            else:
                loop.call_soon_threadsafe(profiler.disable)
            print(f"{result.requests} requests, {result.rps:.0f} req/s under the profiler")
            server.should_exit = True

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            threading.Thread(target=drive, args=(loop,), daemon=True).start()
            await server.serve(sockets=[sock])

        tune_gc()
        run(serve())

    if sampler is not None:
        print(sampled_shares(stacks.read_text(), args.top))
        print(f"collapsed stacks: {stacks}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(args.output)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(args.top)
        print(out.getvalue())
    print(f"raw profile: {args.output}")
    return 0


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_sampling(py_spy: str, stacks: Path, duration: float) -> subprocess.Popen[bytes]:
    """py-spy sampling this process (its main thread serves) for `duration` seconds."""
    stacks.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", "250"]
    command += ["--duration", str(round(duration)), "--output", str(stacks), "--gil"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def function_of(frame: str) -> str:
    """`name (path/file.py:12)` as `file.py:name`: one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{Path(where.rsplit(':', 1)[0]).name}:{name}"


def sampled_shares(collapsed: str, top: int) -> str:
    """Each function's share of the samples: own (at the top of the stack) and inclusive."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_of(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"{total} samples"]
    for title, table in (("own", own), ("inclusive", inclusive)):
        lines.append(f"\n{title} share of the samples:")
        for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]:
            lines.append(f"{100 * count / max(total, 1):6.2f} %  {frame}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
