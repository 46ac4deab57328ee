"""The `bff` command: demo, serve, services, check-config, schema, persist."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from bff.config import ConfigError, Settings, inactive_sections, load_settings

log = logging.getLogger("bff")

CONFIG_ENV = "BFF_CONFIG"


def usable_settings(path: str | None) -> Settings:
    """The settings at `path`, valid, naming every upstream the schema calls, and with a
    usable persisted-query manifest."""
    from bff.app import check_manifest, check_upstreams

    settings = load_settings(path)
    check_upstreams(settings)
    check_manifest(settings)
    return settings


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
    for line in inactive_sections(settings):
        print(f"bff: warning: {line}", file=sys.stderr)


def app_from_env() -> object:
    """uvicorn factory for `--workers N` where SO_REUSEPORT does not balance (each worker
    process loads the config itself)."""
    from bff.app import create_app
    from bff.serving import tune_gc

    app = create_app(load_or_exit(os.environ.get(CONFIG_ENV)))
    tune_gc()
    return app


def run_uvicorn(app: object, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    options = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers > 1:
        uvicorn.run("bff.cli:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)  # type: ignore[arg-type]


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    """`bff serve --workers N`: a supervisor and N workers, each with its own socket."""
    from bff.workers import Supervisor, SupervisorError

    def announce(bound: int) -> None:
        print(f"bff: serving on http://{host}:{bound}/graphql", file=sys.stderr, flush=True)

    try:
        return Supervisor(settings, host, port, workers).serve(announce)
    except SupervisorError as error:
        print(f"bff: {error}", file=sys.stderr)
        return 1


def cmd_serve(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get(CONFIG_ENV)
    settings = load_or_exit(path)
    logging.getLogger().setLevel(settings.logging.level.upper())
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

    print(f"bff: serving on http://{host}:{port}/graphql", file=sys.stderr, flush=True)
    if workers > 1:
        run_uvicorn(None, host, port, workers)
    else:
        app = create_app(settings)
        tune_gc()
        run_uvicorn(app, host, port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bff.app import create_app
    from bff.demo import banner, demo_settings, demo_token
    from bff.serving import bind, serve_on, tune_gc
    from services import SERVICE_NAMES
    from services.runner import RunningServices, ServiceSpec

    sock = bind(args.host, args.port)
    with RunningServices([ServiceSpec(name) for name in SERVICE_NAMES]) as running:
        settings = demo_settings(running.urls, host=args.host, port=sock.getsockname()[1])
        app = create_app(settings)
        tune_gc()
        print(banner(settings, demo_token(settings)), flush=True)
        serve_on(app, sock)
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from services import run_from_args

    return run_from_args(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        settings = usable_settings(args.file)
    except ConfigError as error:
        print(f"{args.file}: invalid\n{error}", file=sys.stderr)
        return 1
    warn_inactive(settings)
    print(f"{args.file}: ok ({len(settings.upstreams)} upstreams)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from schema import sdl

    print(sdl())
    return 0


def cmd_persist(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bff.persisted import DocumentsError
    from bff.persisted.command import persist
    from schema import schema

    path = args.config or os.environ.get(CONFIG_ENV)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        print(f"bff: invalid configuration ({path or 'defaults'}):\n{error}", file=sys.stderr)
        return 2
    manifest = Path(args.manifest) if args.manifest else None
    try:
        lines = persist(Path(args.directory), settings, schema._schema, manifest)
    except DocumentsError as error:
        print(f"bff persist: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from services import add_service_arguments

    parser = argparse.ArgumentParser(prog="bff", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the sample services and the gateway")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=cmd_demo)

    serve = commands.add_parser("serve", help="run the gateway from a config file")
    serve.add_argument("--config", help=f"path to bff.yaml (default: ${CONFIG_ENV})")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=positive_int)
    serve.set_defaults(run=cmd_serve)

    services = commands.add_parser("services", help="run the sample REST services")
    add_service_arguments(services)
    services.set_defaults(run=cmd_services)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(run=cmd_check_config)

    schema = commands.add_parser("schema", help="print the GraphQL schema (SDL)")
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
    from bff.serving import LOG_FORMAT

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
