"""Reading an OpenAPI document: the file, its `$ref`s, and places in it as JSON pointers.

Every problem found in a document is reported at its place, as OpenAPI validators do
(`#/paths/~1pets/get/parameters/0`), so a user can open the document there. Only local
references (`#/...`) are followed; chains of them (a `$ref` to a schema that is itself a
`$ref`) are followed to the end, and a cycle of references is an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Pointer = tuple[str | int, ...]

MAX_REF_CHAIN = 64


class DocumentError(Exception):
    """A problem in a document, at `where` (a JSON pointer)."""

    def __init__(self, where: Pointer, message: str) -> None:
        super().__init__(f"{pointer_text(where)}: {message}")
        self.where = where
        self.message = message


def pointer_text(where: Sequence[str | int]) -> str:
    """`("paths", "/pets", "get")` -> `#/paths/~1pets/get` (RFC 6901 escapes)."""
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in where)
    return "#/" + "/".join(escaped) if where else "#"


def parse_pointer(ref: str) -> Pointer:
    """The parts of a local reference `#/components/schemas/Pet`."""
    if ref == "#":
        return ()
    if not ref.startswith("#/"):
        raise ValueError("only local references (#/...) are followed")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/"))


class Document:
    """A parsed OpenAPI 3.0 or 3.1 document."""

    def __init__(self, data: Mapping[str, Any], path: Path | None = None) -> None:
        self.data = data
        self.path = path
        version = data.get("openapi")
        if not isinstance(version, str) or not version.startswith(("3.0", "3.1")):
            raise DocumentError(("openapi",), f"not OpenAPI 3.0 or 3.1 (openapi: {version!r})")
        self.version = version

    @classmethod
    def load(cls, path: Path) -> Document:
        """The document at `path`: JSON when it parses as JSON, else YAML."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DocumentError((), f"cannot read {path.name} ({error})") from None
        try:
            data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as error:
            raise DocumentError((), f"{path.name} is not JSON or YAML ({error})") from None
        if not isinstance(data, dict):
            raise DocumentError((), f"{path.name}: the top level must be a mapping")
        return cls(data, path)

    def at(self, where: Pointer) -> Any:
        node: Any = self.data
        for part in where:
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if not (in_list or (isinstance(node, Mapping) and part in node)):
                raise KeyError(where)
            node = node[part]
        return node

    def follow(self, node: Any, where: Pointer) -> tuple[Any, Pointer]:
        """`node` with its `$ref` chain followed: the target and its own place."""
        seen: list[str] = []
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if len(seen) > MAX_REF_CHAIN or ref in seen:
                raise DocumentError(where, f"$ref cycle through {ref}")
            seen.append(ref)
            try:
                target = parse_pointer(ref)
                node = self.at(target)
            except ValueError as error:
                raise DocumentError(where, f"$ref {ref}: {error}") from None
            except KeyError:
                raise DocumentError(where, f"$ref {ref} points to nothing") from None
            where = target
        return node, where
