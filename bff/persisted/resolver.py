"""Automatic persisted queries (the Apollo protocol) and persisted-only mode.

A request may carry `extensions.persistedQuery = {"version": 1, "sha256Hash": H}`, by GET or
POST. Without a query, H names the document: known -> it runs; unknown ->
`PERSISTED_QUERY_NOT_FOUND`, and the client sends the query with the hash, which is checked
(`BAD_USER_INPUT` when it does not match), stored for every replica sharing the backend, and
run. In persisted-only mode (`only_persisted`) only hashes from the manifest or `bff persist`
run: registration is refused and an ad-hoc query gets `PERSISTED_QUERY_REQUIRED`.

Documents seen are cached in the process (a hash always names the same text), so a repeated
hash costs no round trip to Redis.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any

from bff.config import PersistedQueriesConfig
from bff.errors import (
    BadUserInput,
    PersistedQueryNotFound,
    PersistedQueryRequired,
    UpstreamUnavailable,
)
from bff.persisted.documents import sha256_hex
from bff.persisted.store import DocumentStore, DocumentStoreUnavailable

log = logging.getLogger("bff.persisted")

CACHE_SIZE = 1024
_HASH = re.compile(r"[0-9a-fA-F]{64}")


class PersistedQueries:
    def __init__(
        self,
        store: DocumentStore,
        config: PersistedQueriesConfig,
        manifest: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.apq = config.apq
        self.only_persisted = config.only_persisted
        self.apq_ttl = config.apq_ttl
        self.manifest = dict(manifest or {})
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._store_down = False

    def applies(self, query: str | None, extensions: dict[str, Any] | None) -> bool:
        """Whether `resolve` has anything to do (so plain queries skip it without an await)."""
        return (
            self.only_persisted
            or query is None
            or (extensions is not None and "persistedQuery" in extensions)
        )

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str:
        """The document to run, or a `BffError` saying why there is none."""
        persisted = extensions.get("persistedQuery") if extensions else None
        if persisted is None:
            if self.only_persisted:
                raise PersistedQueryRequired("Only persisted queries are accepted here")
            if query is None:
                raise BadUserInput("The request has no query")
            return query
        sha256 = self._hash(persisted)
        if query is not None:
            if sha256_hex(query) != sha256:
                raise BadUserInput("provided sha does not match query")
            if self.only_persisted:
                if await self.lookup(sha256) is None:
                    raise PersistedQueryRequired(
                        "Only persisted queries are accepted here; registration is refused"
                    )
                return query
            if self.apq:
                await self.register(sha256, query)
            return query
        document = await self.lookup(sha256)
        if document is None:
            raise PersistedQueryNotFound()
        return document

    @staticmethod
    def _hash(persisted: Any) -> str:
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise BadUserInput("Unsupported persisted query version; use version 1")
        sha256 = persisted.get("sha256Hash")
        if not isinstance(sha256, str) or not _HASH.fullmatch(sha256):
            raise BadUserInput("persistedQuery.sha256Hash must be 64 hexadecimal characters")
        return sha256.lower()

    async def lookup(self, sha256: str) -> str | None:
        document = self._cache.get(sha256) or self.manifest.get(sha256)
        if document is not None:
            return document
        apq = self.apq and not self.only_persisted
        try:
            document = await self.store.get(sha256, apq=apq)
        except DocumentStoreUnavailable as error:
            self._store_failed(error)
            if self.only_persisted:
                raise UpstreamUnavailable(
                    "persisted-query-store", "Persisted queries are unavailable; try again shortly"
                ) from None
            return None  # the client then sends the whole query, which still runs
        self._store_ok()
        if document is not None:
            self._remember(sha256, document)
        return document

    async def register(self, sha256: str, document: str) -> None:
        self._remember(sha256, document)
        try:
            await self.store.register_apq(sha256, document, self.apq_ttl)
        except DocumentStoreUnavailable as error:
            self._store_failed(error)  # this replica still knows it; others will ask again
        else:
            self._store_ok()

    def _remember(self, sha256: str, document: str) -> None:
        self._cache[sha256] = document
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _store_failed(self, error: Exception) -> None:
        if not self._store_down:
            self._store_down = True
            log.warning("persisted query store unreachable (%s)", error)

    def _store_ok(self) -> None:
        if self._store_down:
            self._store_down = False
            log.warning("persisted query store reachable again")
