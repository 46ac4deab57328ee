"""Command line for the sample services: `python -m services` and the gateway's `bff services`.

`add_service_arguments` and `run_from_args` are split out so `bff services` exposes exactly the
same options without repeating them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from collections.abc import Sequence

from services.common import ServiceOptions
from services.registry import SERVICE_NAMES
from services.runner import ServiceSpec, event_loop_factory, serve_forever

DEFAULT_PORT_BASE = 9101
PORTS_PER_SERVICE = 10  # service i gets port_base + 10*i + k for instance k

_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*")


def parse_latency(text: str) -> float:
    """Seconds from `10ms`, `2s` or a bare number of seconds (`0.01`)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid latency {text!r}: use e.g. 10ms, 2s or 0.01")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def _failure_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid failure rate {text!r}: use 0 to 1, e.g. 0.1")
    return rate


def _service_name(text: str) -> str:
    if text not in SERVICE_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown service {text!r}: choose from {', '.join(SERVICE_NAMES)}"
        )
    return text


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the service selection, port and fault-injection options to `parser`."""
    parser.add_argument(
        "names",
        nargs="*",
        type=_service_name,
        metavar="NAME",
        help=f"services to run (default: all of {', '.join(SERVICE_NAMES)})",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help="service i (in the order above) listens on PORT_BASE + 10*i + instance; "
        "0 picks free ports (default: %(default)s)",
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="instances of each service (%(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=parse_latency,
        default=0.0,
        help="delay added to every request, e.g. 10ms, 2s or 0.01 (seconds)",
    )
    parser.add_argument(
        "--failure-rate",
        type=_failure_rate,
        default=0.0,
        help="fraction of requests answered with --fail-status, 0 to 1",
    )
    parser.add_argument(
        "--fail-status", type=int, default=503, help="status of injected failures (503)"
    )
    parser.add_argument(
        "--cache-control",
        default="",
        help="Cache-Control sent on every 2xx GET, e.g. max-age=60 (default: none)",
    )
    parser.add_argument(
        "--etag", action="store_true", help="send an ETag on 2xx GETs; 304 to If-None-Match"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated data (42)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")


def specs_from_args(args: argparse.Namespace) -> tuple[list[ServiceSpec], dict[str, list[int]]]:
    """The specs and fixed ports the parsed options ask for; ValueError names a bad option."""
    if args.instances < 1:
        raise ValueError("--instances must be at least 1")
    if args.port_base and args.instances > PORTS_PER_SERVICE:
        raise ValueError(f"--instances must be at most {PORTS_PER_SERVICE} with fixed ports")
    top_port = args.port_base + PORTS_PER_SERVICE * (len(SERVICE_NAMES) - 1) + args.instances
    if args.port_base < 0 or top_port > 65535:
        raise ValueError(f"--port-base {args.port_base} leaves no room for every service")
    options = ServiceOptions(
        seed=args.seed,
        latency=args.latency,
        failure_rate=args.failure_rate,
        fail_status=args.fail_status,
        cache_control=args.cache_control,
        etag=args.etag,
    )
    names = [name for name in SERVICE_NAMES if not args.names or name in args.names]
    specs = [ServiceSpec(name, options, args.instances) for name in names]
    ports: dict[str, list[int]] = {}
    if args.port_base:
        for name in names:
            first = args.port_base + PORTS_PER_SERVICE * SERVICE_NAMES.index(name)
            ports[name] = [first + k for k in range(args.instances)]
    return specs, ports


def run_from_args(args: argparse.Namespace) -> int:
    """Serve what `args` asks for until SIGINT/SIGTERM; print each URL, then `ready`."""
    try:
        specs, ports = specs_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def announce(urls: dict[str, list[str]]) -> None:
        for name, instance_urls in urls.items():
            for url in instance_urls:
                print(f"{name} {url}")
        print("ready", flush=True)

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve_forever(specs, ports, announce, host=args.host))
    except OSError as exc:
        hint = "choose another --port-base, or 0 for free ports"
        print(f"error: {exc.strerror or exc}; {hint}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services",
        description="Run the sample shop's REST services (deterministic data, optional faults).",
    )
    add_service_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_from_args(args)
