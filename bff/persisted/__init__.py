"""Persisted queries: APQ (the Apollo protocol), persisted-only mode, manifests, `bff persist`."""

from bff.persisted.documents import DocumentsError, documents_in, load_manifest, sha256_hex
from bff.persisted.resolver import PersistedQueries
from bff.persisted.store import (
    DocumentStore,
    DocumentStoreUnavailable,
    MemoryDocumentStore,
    RedisDocumentStore,
)

__all__ = [
    "DocumentStore",
    "DocumentStoreUnavailable",
    "DocumentsError",
    "MemoryDocumentStore",
    "PersistedQueries",
    "RedisDocumentStore",
    "documents_in",
    "load_manifest",
    "sha256_hex",
]
