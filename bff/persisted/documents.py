"""Persisted documents from files: a JSON manifest, or a folder of `.graphql` files.

A document's id is the sha256 (lowercase hex) of its exact text, as the Apollo protocol
defines it. A manifest is a JSON object mapping hash to document; Apollo's generated manifest
(`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}`) is read too.
Every hash is checked against its document, so a stale manifest fails at start-up rather than
serving the wrong query.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError, parse


class DocumentsError(Exception):
    """A manifest or document folder that cannot be used; the message says where and why."""


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _entries(data: Any) -> list[tuple[Any, Any]]:
    if isinstance(data, dict) and data.get("format") == "apollo-persisted-query-manifest":
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise DocumentsError("operations: must be a list")
        return [
            (op.get("id"), op.get("body")) if isinstance(op, dict) else (None, None)
            for op in operations
        ]
    if isinstance(data, dict):
        return list(data.items())
    raise DocumentsError("must be a JSON object mapping sha256 hashes to documents")


def load_manifest(path: Path) -> dict[str, str]:
    """hash -> document from the JSON manifest at `path`; `DocumentsError` on any problem."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as error:
        raise DocumentsError(f"cannot read ({error.strerror or type(error).__name__})") from None
    except orjson.JSONDecodeError as error:
        raise DocumentsError(f"not valid JSON ({error})") from None
    documents: dict[str, str] = {}
    for index, (key, document) in enumerate(_entries(data)):
        where = repr(key) if isinstance(key, str) else f"entry {index}"
        if not isinstance(key, str) or not isinstance(document, str):
            raise DocumentsError(f"{where}: needs a hash and a document, both strings")
        if sha256_hex(document) != key.lower():
            raise DocumentsError(f"{where}: is not the sha256 of its document")
        documents[key.lower()] = document
    return documents


def documents_in(directory: Path) -> dict[str, Path]:
    """hash -> file of every `.graphql` file below `directory`, each checked to parse."""
    if not directory.is_dir():
        raise DocumentsError(f"{directory}: not a directory")
    found: dict[str, Path] = {}
    for file in sorted(directory.rglob("*.graphql")):
        try:
            text = file.read_text(encoding="utf-8")
            parse(text)
        except (OSError, UnicodeDecodeError) as error:
            raise DocumentsError(f"{file}: cannot read ({error})") from None
        except GraphQLError as error:
            raise DocumentsError(f"{file}: not a GraphQL document ({error.message})") from None
        found[sha256_hex(text)] = file
    if not found:
        raise DocumentsError(f"{directory}: no .graphql files")
    return found
