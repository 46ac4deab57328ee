"""Where the gateway's CPU goes: one workload under load, profiled inside the gateway.

    python -m bench.profile [--workload dashboard] [--concurrency 32] [--duration 10] [--cache]

Starts the sample services (0 ms latency) in a child process, serves the gateway in this
process's main thread under cProfile while `wrk` drives the workload, then prints the
functions with the most own time and the heaviest call paths (cumulative), and writes the
raw profile (`pstats`, readable by snakeviz or `python -m pstats`) next to the bench results.
cProfile slows Python code down unevenly (calls cost more than loops), so read the shares,
not the absolute times. `--cache` profiles a warm response cache (the services answer
`Cache-Control: max-age=600` with an ETag, as in `bench.cache`). `py-spy record -o flame.svg
--pid <gateway>` during a normal `bench.run` gives the sampling view.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.load import MISSING_WRK, run_wrk, write_script, wrk_path
from bench.procs import Children, Pinning, free_port
from bench.stack import gateway_config, service_urls_of, sign_token, start_services
from bench.workloads import available

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
    args = parser.parse_args(argv)
    if wrk_path() is None:
        print(MISSING_WRK, file=sys.stderr)
        return 2
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
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        headers = {"content-type": "application/json"}
        if workload.needs_token:
            headers["authorization"] = f"Bearer {sign_token(config_path)}"
        script = write_script(Path(tmp) / "load.lua", workload.body, headers)

        sock = bind("127.0.0.1", free_port())
        server = server_for(create_app(load_settings(str(config_path))))
        profiler = cProfile.Profile()

        def drive(loop: asyncio.AbstractEventLoop) -> None:
            while not server.started:
                time.sleep(0.01)
            url = f"{url_of(sock)}/graphql"
            run_wrk(url, script, concurrency=args.concurrency, duration=WARM_UP, prefix=[])
            loop.call_soon_threadsafe(profiler.enable)  # cProfile profiles the calling thread
            result = run_wrk(
                url, script, concurrency=args.concurrency, duration=args.duration, prefix=[]
            )
            loop.call_soon_threadsafe(profiler.disable)
            print(f"{result.requests} requests, {result.rps:.0f} req/s under the profiler")
            server.should_exit = True

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            threading.Thread(target=drive, args=(loop,), daemon=True).start()
            await server.serve(sockets=[sock])

        tune_gc()
        run(serve())

    args.output.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(args.output)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(args.top)
        print(out.getvalue())
    print(f"raw profile: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
