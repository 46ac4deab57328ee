"""Guard the layering: data flows one way, and each layer imports only from those below it.

`ALLOWED` is the one table of which of our layers may import which. A layer is a top-level
package (`schema`, `resolvers`, `upstream_clients`, `services`) or a direct child of `bff`
(`bff.http`, `bff.graphql`, `bff.errors`, ...). Every layer on disk must have a row, so a new
package is placed deliberately; the table itself must have no cycle, so no edit of it can
bring back one like the old `bff.http` <-> `bff.graphql`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import bff.errors
from bff import errors

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("bff", "schema", "resolvers", "upstream_clients", "services")

# What a layer may import besides itself. Kernel first, then the data path from the bottom
# (upstream HTTP) to the top (routes, the app and its commands).
KERNEL = {"bff.errors", "bff.config", "bff.request_id", "bff.closing", "bff.int_text"}
ALLOWED: dict[str, set[str]] = {
    # kernel: nothing else of ours
    "bff.errors": set(),
    "bff.config": set(),
    "bff.request_id": set(),
    "bff.closing": set(),
    "bff.int_text": set(),
    # principal, policy, tokens
    "bff.auth": KERNEL | {"bff.shared_state"},
    # shared state (Redis), query analysis and rate limits, persisted queries: no HTTP, no GraphQL
    # execution; stages and routes call them
    "bff.shared_state": KERNEL,
    "bff.limits": KERNEL | {"bff.auth"},
    "bff.persisted": KERNEL | {"bff.shared_state"},
    # data path, bottom up
    "bff.upstream": KERNEL,
    # the public API a graph is written in: typed clients, loaders, batched fields, the context
    "bff.graph": KERNEL | {"bff.auth", "bff.upstream"},
    # the shop, one graph like any other: it imports the engine's public API, never the reverse
    "upstream_clients": KERNEL | {"bff.upstream", "bff.graph"},
    "resolvers": KERNEL | {"bff.auth", "bff.upstream", "bff.graph", "upstream_clients"},
    "schema": KERNEL | {"bff.auth", "bff.graph", "upstream_clients", "resolvers"},
    # which graph a gateway serves (the `graph` key), joined with the engine's own fields
    "bff.graphs": KERNEL | {"bff.graph", "bff.sources"},
    # OpenAPI sources: documents turned into a graph at start-up, on the same public API
    "bff.sources": KERNEL | {"bff.auth", "bff.limits", "bff.upstream", "bff.graph"},
    "bff.rendering": KERNEL,  # media types and every error body, below http and graphql
    "bff.graphql": KERNEL | {"bff.auth", "bff.limits", "bff.rendering", "bff.graph"},
    "bff.http": KERNEL | {"bff.auth", "bff.limits", "bff.rendering", "bff.upstream"},
    # REST passthrough: a route of its own, policy-checked, straight onto the upstream pools
    "bff.passthrough": KERNEL | {"bff.auth", "bff.http", "bff.upstream"},
    "bff.routes": KERNEL
    | {
        "bff.auth",
        "bff.limits",
        "bff.persisted",
        "bff.rendering",
        "bff.upstream",
        "bff.graph",
        "bff.graphql",
        "bff.http",
    },
    # side layer (spans, metrics, logs, metering): it wraps the data path at its seams, so it
    # may know the types there, and nothing on the path imports it: the app injects it
    "bff.metering": KERNEL,
    "bff.telemetry": KERNEL
    | {"bff.auth", "bff.metering", "bff.rendering", "bff.http", "bff.upstream", "bff.graph"},
    # the app and its commands, on top
    "bff.serving": KERNEL | {"bff.rendering"},  # the edge's own refusals (431, 503)
    "bff.demo": KERNEL | {"bff.auth", "bff.http", "bff.rendering", "services"},
    "bff.app": KERNEL
    | {
        "bff.auth",
        "bff.passthrough",
        "bff.limits",
        "bff.persisted",
        "bff.shared_state",
        "bff.telemetry",
        "bff.rendering",
        "bff.upstream",
        "bff.graph",
        "bff.graphs",
        "bff.graphql",
        "bff.http",
        "bff.routes",
    },
    "bff.workers": KERNEL | {"bff.serving", "bff.app", "bff.telemetry"},
    "bff.cli": KERNEL
    | {
        "bff.serving",
        "bff.app",
        "bff.demo",
        "bff.workers",
        "bff.telemetry",
        "bff.metering",
        "bff.persisted",
        "bff.shared_state",
        "bff.graph",
        "bff.graphs",
        "services",
    },
    # the sample services stand alone: they know nothing of the gateway
    "services": set(),
}

# Layer -> third-party top-level modules it must never import.
ONLY_TELEMETRY = {"opentelemetry", "prometheus_client"}
FORBIDDEN: dict[str, set[str]] = {
    "resolvers": {"httpx", "httptools", "strawberry", "fastapi", "starlette"},
    "upstream_clients": {"httpx", "httptools", "strawberry", "graphql", "fastapi", "starlette"},
    "schema": {"httpx", "httptools", "fastapi", "starlette"},
    "bff.upstream": {"strawberry", "graphql", "starlette"},
    "bff.graph": {"httpx", "httptools", "fastapi", "starlette"},
    "bff.auth": {"strawberry", "graphql", "httpx"},
    "bff.config": {"strawberry", "graphql", "httpx", "starlette"},
    "bff.rendering": {"strawberry", "httpx"},
    "services": {"strawberry"},
}


def python_files() -> Iterator[Path]:
    for top in TOP_PACKAGES:
        yield from sorted((ROOT / top).rglob("*.py"))


def layer_of_path(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:2]) if parts[0] == "bff" and len(parts) > 1 else parts[0]


def layer_of_module(module: str) -> str | None:
    """Our layer of a dotted module name, `None` for a third-party module."""
    parts = module.split(".")
    if parts[0] not in TOP_PACKAGES:
        return None
    return ".".join(parts[:2]) if parts[0] == "bff" and len(parts) > 1 else parts[0]


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(ROOT).parent.parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                found.add(node.module)
    return found


def violations(layer: str, modules: Iterable[str]) -> list[str]:
    """The modules among `modules` that code in `layer` must not import."""
    bad = []
    for module in sorted(modules):
        target, top = layer_of_module(module), module.split(".")[0]
        if target is not None:
            if target != layer and target not in ALLOWED[layer]:
                bad.append(module)
        elif top in FORBIDDEN.get(layer, set()) or (
            top in ONLY_TELEMETRY and layer != "bff.telemetry"
        ):
            bad.append(module)
    return bad


def cycle_through(start: str) -> bool:
    """Whether the allowed directions lead from `start` back to itself."""
    stack, seen = list(ALLOWED.get(start, ())), set()
    while stack:
        layer = stack.pop()
        if layer == start:
            return True
        if layer not in seen:
            seen.add(layer)
            stack.extend(ALLOWED.get(layer, ()))
    return False


def test_every_layer_has_a_row() -> None:
    layers = {layer_of_path(p) for p in python_files()}
    assert layers - set(ALLOWED) == set(), "place the new package in ALLOWED"


def test_the_allowed_directions_have_no_cycle() -> None:
    assert [layer for layer in ALLOWED if cycle_through(layer)] == []


def test_http_and_graphql_do_not_import_each_other() -> None:
    assert violations("bff.http", ["bff.graphql.executor"]) == ["bff.graphql.executor"]
    assert violations("bff.graphql", ["bff.http.state"]) == ["bff.http.state"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_the_table_allows(layer: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in python_files()
        if layer_of_path(path) == layer
        for module in violations(layer, imported_modules(path))
    ]
    assert offenders == []


def test_the_guard_sees_violations() -> None:
    """The checker itself, on made-up imports and on a real file."""
    assert violations("resolvers", ["schema.types", "starlette.requests", "bff.errors"]) == [
        "schema.types",
        "starlette.requests",
    ]
    assert violations("bff.upstream", ["opentelemetry.trace"]) == ["opentelemetry.trace"]
    assert violations("bff.telemetry", ["opentelemetry.trace", "bff.errors"]) == []
    assert violations("bff.errors", ["bff.config"]) == ["bff.config"]
    assert layer_of_path(ROOT / "bff" / "graphql" / "fastpath" / "plan.py") == "bff.graphql"
    assert layer_of_path(ROOT / "schema" / "types.py") == "schema"
    routes = imported_modules(ROOT / "bff" / "routes" / "graphql.py")
    assert {"bff.graphql.executor", "bff.http.state"} <= routes
    assert violations("bff.http", routes) != []


def test_error_bodies_are_rendered_only_in_bff_rendering() -> None:
    """Stages and routes call `bff.rendering.errors`; none builds an `{"errors": ...}` body."""
    rendering = ROOT / "bff" / "rendering"
    builders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bff").rglob("*.py"))
        if rendering not in path.parents
        and ('{"errors"' in path.read_text() or "{'errors'" in path.read_text())
    ]
    assert builders == []


def test_errors_kernel_imports_nothing_of_ours() -> None:
    modules = imported_modules(Path(bff.errors.__file__))
    assert {m for m in modules if layer_of_module(m) is not None} == set()


def test_error_tree_has_exactly_the_spec_codes() -> None:
    spec = {
        "UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "NOT_FOUND", "UPSTREAM_UNAVAILABLE",
        "UPSTREAM_TIMEOUT", "RATE_LIMITED", "QUERY_TOO_DEEP", "QUERY_TOO_COMPLEX",
        "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_REQUIRED", "INTERNAL_SERVER_ERROR",
    }  # fmt: skip
    classes = [errors.BffError]
    seen = set()
    while classes:
        cls = classes.pop()
        seen.add(cls.code)
        classes.extend(cls.__subclasses__())
    assert seen == spec == set(errors.CODES)


def test_internal_errors_never_expose_their_message() -> None:
    error = errors.BffError("db password is hunter2")
    assert error.public_message == "Internal server error"
    assert errors.error_body(error) == {
        "message": "Internal server error",
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }


TELEMETRY_LIBRARIES = ("opentelemetry", "prometheus_client")


def test_only_bff_telemetry_imports_the_telemetry_libraries() -> None:
    offenders = []
    for package in ("bff", "schema", "resolvers", "upstream_clients", "services"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "bff" / "telemetry"):
                continue
            for module in imported_modules(path):
                if module.split(".")[0] in TELEMETRY_LIBRARIES:
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


SHOP_LAYERS = {"schema", "resolvers", "upstream_clients"}


def test_the_engine_imports_no_graph() -> None:
    """`bff/` serves any graph: the shop is one, reached only through `graph: shop`."""
    offenders = []
    for path in sorted((ROOT / "bff").rglob("*.py")):
        for module in imported_modules(path):
            if module.split(".")[0] in SHOP_LAYERS:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []
    assert all(SHOP_LAYERS.isdisjoint(ALLOWED[layer]) for layer in ALLOWED if "bff" in layer)
