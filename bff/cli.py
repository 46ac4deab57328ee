"""The `bff` command: demo, serve, services, check-config, schema, usage, persist."""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING

from bff.config import ConfigError, Settings, inactive_sections, load_settings

if TYPE_CHECKING:
    from graphql import GraphQLSchema

log = logging.getLogger("bff")

CONFIG_ENV = "BFF_CONFIG"
DISTRIBUTION = "bff-gateway"  # the package index name; the import package and command are bff


def usable_settings(path: str | None) -> Settings:
    """The settings at `path`, valid, naming every upstream the graph calls, with a usable
    persisted-query manifest and usable OTEL_* variables for the trace exporter."""
    return checked_config(path)[0]


def checked_config(path: str | None) -> tuple[Settings, tuple[str, ...]]:
    """`usable_settings` and the served graph's start-up warnings (`Graph.notes`)."""
    from bff.app import check_manifest
    from bff.graphs import served_graph
    from bff.telemetry.collector import check_exporter

    settings = load_settings(path)
    notes = served_graph(settings).notes
    check_manifest(settings)
    check_exporter(settings.telemetry, os.environ)
    return settings, notes


def schema_of(path: str | None) -> GraphQLSchema:
    """The schema a gateway with the config at `path` serves; without one, the default
    graph with the engine's token mutations (as `bff demo` serves it)."""
    from bff.graph import Graph
    from bff.graph.token_fields import token_graph
    from bff.graphs import load_graph, served_graph

    if path is None:
        shop = load_graph("shop")
        assert shop is not None
        return Graph.combine([shop, token_graph()]).schema
    return served_graph(load_settings(path), require_upstreams=False).schema


def load_or_exit(path: str | None) -> Settings:
    try:
        return usable_settings(path)
    except ConfigError as error:
        where = path or "defaults"
        print(f"bff: invalid configuration ({where}):\n{error}", file=sys.stderr)
        raise SystemExit(2) from None


def positive_int(text: str) -> int:
    """argparse type of `--workers`: 0 or less is a mistake, not one worker."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def warn_inactive(settings: Settings) -> None:
    warn(inactive_sections(settings))


def shared_store_warnings(settings: Settings, workers: int) -> list[str]:
    """What breaks when several workers each keep their own memory token store."""
    if workers < 2 or settings.auth.store != "memory":
        return []
    return [
        f"{workers} workers with auth.store: memory: each worker keeps its own refresh tokens, "
        "revocations and opaque tokens, so a refresh (or a revocation) works only on the worker "
        "that issued the token and fails on the others; set auth.store: redis and redis.url "
        "to share them, or run one worker"
    ]


def warn(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"bff: warning: {line}", file=sys.stderr)


def app_from_env() -> object:
    """uvicorn factory for `--workers N` where SO_REUSEPORT does not balance (each worker
    process loads the config itself)."""
    from bff.app import create_app
    from bff.serving import tune_gc

    app = create_app(load_or_exit(os.environ.get(CONFIG_ENV)))
    tune_gc()
    return app


def run_uvicorn_workers(host: str, port: int, workers: int, drain_timeout: float) -> None:
    """uvicorn's own multiprocess mode, where SO_REUSEPORT does not balance connections."""
    import uvicorn

    uvicorn.run(
        "bff.cli:app_from_env",
        factory=True,
        http="bff.serving.edge:EdgeProtocol",  # the `server` limits on client connections
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For: only from server.trusted_proxies (bff.serving)
        timeout_graceful_shutdown=math.ceil(drain_timeout),  # SPEC section 10: then exit
    )


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    """`bff serve --workers N`: a supervisor and N workers, each with its own socket."""
    from bff.workers import Supervisor, SupervisorError

    def announce(bound: int) -> None:  # once bound: a taken port stays a one-line refusal
        warn(shared_store_warnings(settings, workers))
        print(f"bff: serving on http://{host}:{bound}/graphql", file=sys.stderr, flush=True)

    try:
        return Supervisor(settings, host, port, workers).serve(announce)
    except SupervisorError as error:
        print(f"bff: {error}", file=sys.stderr)
        return 1


def cmd_serve(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get(CONFIG_ENV)
    if not path:  # the built-in defaults name no upstream: they cannot start a gateway
        print(
            f"bff serve: give --config FILE (or set {CONFIG_ENV}); the README's Configuration "
            "section has a minimal file, and `bff demo` runs without one",
            file=sys.stderr,
        )
        return 2
    settings = load_or_exit(path)
    from bff.telemetry.logs import configure_logging

    configure_logging(settings.logging.level, settings.logging.format)
    warn_inactive(settings)
    host = args.host or settings.server.host
    port = settings.server.port if args.port is None else args.port  # --port 0 is a port
    workers = args.workers or settings.server.workers
    from bff.serving import tune_gc
    from bff.workers import REUSE_PORT_BALANCES

    if workers > 1 and REUSE_PORT_BALANCES:
        return serve_workers(settings, host, port, workers)
    if workers > 1 and port == 0:  # uvicorn's workers would serve a port we cannot announce
        print("bff: --port 0 needs SO_REUSEPORT when --workers > 1; give a port", file=sys.stderr)
        return 2

    if path:
        os.environ[CONFIG_ENV] = os.path.abspath(path)
    from bff.app import create_app

    if workers > 1:
        warn(shared_store_warnings(settings, workers))
        print(f"bff: serving on http://{host}:{port}/graphql", file=sys.stderr, flush=True)
        run_uvicorn_workers(host, port, workers, settings.server.drain_timeout)
        return 0
    from bff.serving import bind, serve_on, url_of

    app = create_app(settings)
    tune_gc()
    try:
        sock = bind(host, port)  # before announcing: the real port, also for --port 0
    except OSError as error:
        print(f"bff: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"bff: serving on {url_of(sock)}/graphql", file=sys.stderr, flush=True)
    serve_on(app, sock, settings.server.drain_timeout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bff.app import create_app
    from bff.demo import DEMO_INSTANCES, banner, demo_logins, demo_settings
    from bff.demo.control import control_routes
    from bff.demo.fleet import DemoFleet
    from bff.serving import bind, serve_on, tune_gc
    from bff.telemetry.logs import configure_logging

    try:
        sock = bind(args.host, args.port)
    except OSError as error:
        print(
            f"bff: cannot listen on {args.host}:{args.port}: {bind_problem(error)}", file=sys.stderr
        )
        return 1
    with DemoFleet(DEMO_INSTANCES) as fleet:
        settings = demo_settings(fleet.urls, host=args.host, port=sock.getsockname()[1])
        configure_logging(settings.logging.level, settings.logging.format)  # JSON access lines
        graphiql_headers: dict[str, str] = {}  # filled once the admin has logged in
        app = create_app(settings, graphiql_headers=graphiql_headers)
        app.router.routes.extend(control_routes(fleet))  # the demo's own: /demo/services
        tune_gc()
        logins = demo_logins(app.state.auth.service, fleet.urls["auth"][0])
        graphiql_headers["Authorization"] = f"Bearer {logins[0].tokens.access_token}"
        print(banner(settings, logins), flush=True)
        serve_on(app, sock, settings.server.drain_timeout)
    return 0


def bind_problem(error: OSError) -> str:
    """Why a port could not be bound, in words a user can act on."""
    if error.errno == errno.EADDRINUSE:
        return "the port is already in use (another bff demo?); choose one with --port"
    if error.errno == errno.EACCES:
        return "permission denied; choose a port above 1023 with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address; choose another with --host"
    return error.strerror or type(error).__name__


def cmd_services(args: argparse.Namespace) -> int:
    from services import run_from_args

    return run_from_args(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings, notes = checked_config(args.file)
    except ConfigError as error:
        print(f"{args.file}: invalid\n{error}", file=sys.stderr)
        return 1
    warn_inactive(settings)
    warn(shared_store_warnings(settings, settings.server.workers))
    for note in notes:
        print(f"bff: warning: {note}", file=sys.stderr)
    print(f"{args.file}: ok ({len(settings.upstreams)} upstreams)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from graphql import print_schema

    path = args.config or os.environ.get(CONFIG_ENV)
    try:
        schema = schema_of(path)
    except ConfigError as error:
        print(f"bff: invalid configuration ({path}):\n{error}", file=sys.stderr)
        return 2
    print(print_schema(schema))
    return 0


def version() -> str:
    """The installed distribution's version (the source tree's, when run uninstalled)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def cmd_usage(args: argparse.Namespace) -> int:
    """The metering report: from a running gateway (`--url`) or straight from Redis."""
    import asyncio

    import httpx
    import orjson

    from bff.config.units import parse_duration

    try:
        window = parse_duration(args.window)
    except ValueError as error:
        print(f"bff: --window: {error}", file=sys.stderr)
        return 2
    if args.url:
        params = {"window": args.window, "client": args.client, "operation": args.operation}
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        try:
            response = httpx.get(
                f"{args.url.rstrip('/')}/admin/usage",
                params={k: v for k, v in params.items() if v},
                headers=headers,
                timeout=10,
                trust_env=False,
            )
        except httpx.HTTPError as error:
            print(f"bff: cannot reach {args.url}: {error}", file=sys.stderr)
            return 1
        if response.status_code != 200:
            print(
                f"bff: {args.url} answered {response.status_code}: {response.text}", file=sys.stderr
            )
            return 1
        data = response.json()
    else:
        from bff.metering import RedisUsageStore, usage_report
        from bff.shared_state import SharedState
        from bff.telemetry.hub import schema_fields

        settings = load_or_exit(args.config or os.environ.get(CONFIG_ENV))
        shared = SharedState.from_settings(settings)
        if shared.redis is None:
            print(
                "bff: usage is kept in the gateway's memory without redis.url: "
                "give --url of a running gateway (and --token with scope admin)",
                file=sys.stderr,
            )
            return 2
        store = RedisUsageStore(shared.redis, shared.namespace("usage"))

        async def read() -> dict[str, object]:
            try:
                report = await usage_report(
                    store,
                    schema_fields(schema_of(args.config or os.environ.get(CONFIG_ENV))),
                    window=window,
                    client=args.client,
                    operation=args.operation,
                )
                return report.as_json()
            finally:
                await shared.aclose()

        try:
            data = asyncio.run(read())
        except Exception as error:  # Redis away: say so, no traceback
            print(f"bff: cannot read usage from Redis: {error}", file=sys.stderr)
            return 1
    from bff.metering import render_table

    print(orjson.dumps(data).decode() if args.json else render_table(data))
    return 0


def cmd_persist(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bff.persisted import DocumentsError
    from bff.persisted.command import persist

    path = args.config or os.environ.get(CONFIG_ENV)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        print(f"bff: invalid configuration ({path or 'defaults'}):\n{error}", file=sys.stderr)
        return 2
    manifest = Path(args.manifest) if args.manifest else None
    try:
        lines = persist(Path(args.directory), settings, schema_of(path), manifest)
    except DocumentsError as error:
        print(f"bff persist: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from services import add_service_arguments

    parser = argparse.ArgumentParser(prog="bff", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}", help="print the version"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to run (see COMMAND -h)"
    )

    demo = commands.add_parser(
        "demo",
        help="run the sample services and the gateway, with a ready token",
        description="Run the six sample services and the gateway in one process with embedded "
        "defaults (no config file, no Redis); print the URLs, a token for user 1 and an example.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    demo.add_argument(
        "--port", type=int, default=8000, help="gateway port, 0 for any free one (%(default)s)"
    )
    demo.set_defaults(run=cmd_demo)

    serve = commands.add_parser(
        "serve",
        help="run the gateway from a config file",
        description="Run the gateway. The config file is validated first; keys whose feature is "
        "not active yet are warned about.",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help=f"path to bff.yaml (required unless ${CONFIG_ENV} names it)",
    )
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    serve.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="worker processes sharing the port (default: server.workers)",
    )
    serve.set_defaults(run=cmd_serve)

    services = commands.add_parser(
        "services",
        help="run the sample REST services",
        description="Run the sample shop's REST services; each prints its URL, then `ready`.",
    )
    add_service_arguments(services)
    services.set_defaults(run=cmd_services)

    check = commands.add_parser(
        "check-config",
        help="validate a config file",
        description="Validate a config file: every problem is printed with its key; exit 1 if "
        "any. Keys whose feature is not active yet are warned about.",
    )
    check.add_argument("file", metavar="FILE", help="the YAML config file to check")
    check.set_defaults(run=cmd_check_config)

    usage = commands.add_parser("usage", help="who calls what, how often and how fast")
    usage.add_argument("--config", help=f"path to bff.yaml (default: ${CONFIG_ENV})")
    usage.add_argument("--window", default="1h", help="how far back (default 1h, at most 7d)")
    usage.add_argument("--client", help="only this client id (user:1, anonymous, ...)")
    usage.add_argument("--operation", help="only this operation name")
    usage.add_argument("--url", help="ask this running gateway instead of Redis")
    usage.add_argument("--token", help="bearer token with scope admin, for --url")
    usage.add_argument("--json", action="store_true", help="print JSON instead of tables")
    usage.set_defaults(run=cmd_usage)

    schema = commands.add_parser(
        "schema",
        help="print the GraphQL schema (SDL)",
        description="Print the gateway's GraphQL schema in SDL: the graph the config serves"
        " (its sources and the engine's token mutations merged in), or without a config the"
        " default graph as `bff demo` serves it.",
    )
    schema.add_argument("--config", help="the gateway's config file (default: $BFF_CONFIG)")
    schema.set_defaults(run=cmd_schema)

    persist = commands.add_parser(
        "persist", help="register a folder of .graphql documents as persisted queries"
    )
    persist.add_argument("directory", help="folder searched for *.graphql files")
    persist.add_argument("--config", help=f"bff.yaml naming redis.url (default: ${CONFIG_ENV})")
    persist.add_argument("--manifest", help="merge into this JSON manifest instead of Redis")
    persist.set_defaults(run=cmd_persist)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bff.request_id import install_log_records
    from bff.serving import LOG_FORMAT

    install_log_records()  # before any handler formats LOG_FORMAT's request_id
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # `bff schema | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
