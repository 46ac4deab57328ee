"""Guard the layering: data flows one way, and each layer imports only from those below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bff.errors
from bff import errors

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level modules it must never import
FORBIDDEN: dict[str, set[str]] = {
    "resolvers": {"httpx", "httptools", "strawberry", "schema", "fastapi", "starlette"},
    "upstream_clients": {
        "httpx",
        "httptools",
        "strawberry",
        "graphql",
        "schema",
        "resolvers",
        "fastapi",
        "starlette",
    },
    "schema": {"httpx", "httptools", "fastapi", "starlette"},
    "bff/upstream": {"strawberry", "graphql", "schema", "resolvers", "upstream_clients"},
    "bff/auth": {"strawberry", "graphql", "schema", "resolvers", "httpx", "upstream_clients"},
    "bff/config": {"strawberry", "graphql", "schema", "resolvers", "httpx", "upstream_clients"},
    "services": {"bff", "schema", "resolvers", "upstream_clients", "strawberry"},
    "bff/limits": {"strawberry", "schema", "resolvers", "upstream_clients", "bff.graphql", "httpx"},
    "bff/persisted": {"strawberry", "schema", "resolvers", "upstream_clients", "bff.graphql"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_does_not_import_upward(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package] or module.startswith(tuple(FORBIDDEN[package])):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_errors_kernel_imports_nothing_of_ours() -> None:
    modules = imported_modules(Path(bff.errors.__file__))
    assert {m for m in modules if m.split(".")[0] in {"bff", "schema", "resolvers"}} == set()


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
