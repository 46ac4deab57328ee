"""`bff persist DIR`: register a folder of `.graphql` documents as persisted queries.

Each document is parsed and validated against the schema first (a typo fails here, not in
production), then stored under its sha256 in the shared Redis of `--config` (`redis.url`),
where every replica finds it, persisted-only mode included. With `--manifest FILE` the
documents are merged into a JSON manifest instead (for `persisted_queries.manifest`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from graphql import GraphQLSchema, parse, validate

from bff.config import Settings
from bff.persisted.documents import DocumentsError, documents_in, load_manifest
from bff.persisted.store import DocumentStoreUnavailable, RedisDocumentStore
from bff.shared_state import SharedState, configured


def read_documents(directory: Path, schema: GraphQLSchema) -> dict[str, tuple[Path, str]]:
    """hash -> (file, text) of every valid document below `directory`; `DocumentsError`."""
    found: dict[str, tuple[Path, str]] = {}
    for sha256, file in documents_in(directory).items():
        text = file.read_text(encoding="utf-8")
        errors = validate(schema, parse(text))
        if errors:
            raise DocumentsError(f"{file}: invalid against the schema ({errors[0].message})")
        found[sha256] = (file, text)
    return found


def write_manifest(path: Path, documents: dict[str, str]) -> int:
    """Merge `documents` into the manifest at `path` (created if missing); its new size."""
    existing = load_manifest(path) if path.exists() else {}
    existing.update(documents)
    path.write_bytes(orjson.dumps(existing, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return len(existing)


async def _store(settings: Settings, documents: dict[str, str]) -> None:
    shared = SharedState.from_settings(settings)
    assert shared.redis is not None
    try:
        await RedisDocumentStore(shared.redis, shared.namespace("pq")).persist(documents)
    finally:
        await shared.aclose()


def persist(
    directory: Path, settings: Settings, schema: GraphQLSchema, manifest: Path | None
) -> list[str]:
    """Register the documents of `directory`; the lines to print. Raises `DocumentsError`."""
    found = read_documents(directory, schema)
    documents = {sha256: text for sha256, (_, text) in found.items()}
    lines = [f"{sha256}  {file}" for sha256, (file, _) in sorted(found.items())]
    if manifest is not None:
        total = write_manifest(manifest, documents)
        return [*lines, f"{len(documents)} documents written to {manifest} ({total} in all)"]
    if not configured(settings):
        raise DocumentsError(
            "no shared store: set redis.url in the config (--config), or write a manifest "
            "with --manifest FILE and name it in persisted_queries.manifest"
        )
    try:
        asyncio.run(_store(settings, documents))
    except DocumentStoreUnavailable as error:
        raise DocumentsError(f"cannot reach Redis ({error})") from None
    return [*lines, f"{len(documents)} documents registered in Redis"]
