"""OTLP/HTTP span export: protobuf from our own encoder (`otlp_encoder`), one kept-alive connection.

Export runs on the batch processor's thread; a collector that is down or slow costs that
thread a time-out and a warning (at most one a minute), never a request. Real collectors
want more than a body: the configured headers (an API key) go with every export, bodies are
gzipped unless `compression: none`, and an `https://` endpoint is reached with the TLS
context it is given. Header values are secrets: no log line or message quotes them.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bff.telemetry.otlp_encoder import encode_request

log = logging.getLogger("bff.telemetry")
WARN_EVERY = 60.0


class OtlpHttpExporter(SpanExporter):
    """POSTs protobuf to `{endpoint}/v1/traces` on one kept-alive connection."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        *,
        headers: Mapping[str, str] | None = None,
        compression: str = "gzip",
        context: ssl.SSLContext | None = None,
    ) -> None:
        """`context` is the TLS client context of an `https://` URL (None: the system's CAs);
        `compression` is `gzip` or `none`."""
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path or "/v1/traces"
        self.timeout = timeout
        self.gzip = compression == "gzip"
        self._headers = {
            **dict(headers or {}),
            "Content-Type": "application/x-protobuf",
            **({"Content-Encoding": "gzip"} if self.gzip else {}),
        }
        self._context = context
        self._connection: http.client.HTTPConnection | None = None
        self._warned = 0.0

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self.https:
                self._connection = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self._context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=self.timeout
                )
        return self._connection

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_request(spans)
        if self.gzip:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        headers = self._headers
        for attempt in (1, 2):  # a kept-alive connection the collector closed: one new try
            connection = self._connect()
            try:
                connection.request("POST", self.path, body, headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                self._connection = None
                if attempt == 2:
                    return self._failed(f"{type(error).__name__}: {error}", len(spans))
                continue
            if 200 <= response.status < 300:
                return SpanExportResult.SUCCESS
            return self._failed(f"HTTP {response.status}", len(spans))
        return SpanExportResult.FAILURE

    def _failed(self, why: str, count: int) -> SpanExportResult:
        now = time.monotonic()
        if now - self._warned > WARN_EVERY:
            self._warned = now
            where = f"{self.host}:{self.port}{self.path}"
            log.warning("trace export to %s failed (%s); %d spans dropped", where, why, count)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
