"""OTLP/HTTP span export with a small protobuf encoder of our own.

The SDK's OTLP exporter builds a protobuf message object per span, attribute and value before
serializing; at one Dashboard's twelve spans that cost more CPU than the spans themselves
(about 55 µs a span, measured). The gateway's spans use a handful of field types (ids,
strings, ints, floats, bools, a status), so this module writes the wire format directly, for a
fraction of that. The tests decode what it sends with the official `opentelemetry-proto`
classes, so the encoding is checked against the real schema.

Export runs on the batch processor's thread; a collector that is down or slow costs that
thread a time-out and a warning (at most one a minute), never a request.
"""

from __future__ import annotations

import http.client
import logging
import struct
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("bff.telemetry")
WARN_EVERY = 60.0
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack


_SMALL = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TAGS = [_varint(n << 3 | 2) for n in range(16)]


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, sub-messages)."""
    size = len(payload)
    return _TAGS[number] + (_SMALL[size] if size < 128 else _varint(size)) + payload


_KEYS: dict[str, bytes] = {}  # attribute key -> its encoded `key` field (few distinct keys)


def _key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _field(1, key.encode())
        if len(_KEYS) < 1024:
            _KEYS[key] = encoded
    return encoded


def _any_value(value: Any) -> bytes:
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, list | tuple):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    return _field(1, str(value).encode())


def _attributes(number: int, attributes: Any) -> bytes:
    if not attributes:
        return b""
    return b"".join(
        _field(number, _key(key) + _field(2, _any_value(value)))
        for key, value in attributes.items()
    )


def encode_span(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    parts = [
        _field(1, ctx.trace_id.to_bytes(16, "big")),
        _field(2, ctx.span_id.to_bytes(8, "big")),
    ]
    if ctx.trace_state:
        parts.append(_field(3, ctx.trace_state.to_header().encode()))
    if span.parent is not None:
        parts.append(_field(4, span.parent.span_id.to_bytes(8, "big")))
    parts.append(_field(5, span.name.encode()))
    parts.append(b"\x30" + _varint(span.kind.value + 1))  # OTLP kinds start at INTERNAL = 1
    parts.append(b"\x39" + _pack_fixed64(span.start_time or 0))
    parts.append(b"\x41" + _pack_fixed64(span.end_time or 0))
    parts.append(_attributes(9, span.attributes))
    for event in span.events:
        body = b"\x09" + _pack_fixed64(event.timestamp) + _field(2, event.name.encode())
        parts.append(_field(11, body + _attributes(3, event.attributes)))
    status = span.status
    if status.status_code.value:
        body = _field(2, status.description.encode()) if status.description else b""
        parts.append(_field(15, body + b"\x18" + _varint(status.status_code.value)))
    flags = 0x100 | (0x200 if span.parent is not None and span.parent.is_remote else 0)
    parts.append(b"\x85\x01" + _pack_fixed32(flags | int(ctx.trace_flags)))
    return b"".join(parts)


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """An `ExportTraceServiceRequest` of `spans`, grouped by resource and scope."""
    groups: dict[tuple[int, int], list[ReadableSpan]] = {}  # one group in practice
    for span in spans:
        groups.setdefault((id(span.resource), id(span.instrumentation_scope)), []).append(span)
    out = []
    for members in groups.values():
        first = members[0]
        resource = _field(1, _attributes(1, first.resource.attributes))
        scope_info = first.instrumentation_scope
        scope = _field(1, scope_info.name.encode()) if scope_info is not None else b""
        if scope_info is not None and scope_info.version:
            scope += _field(2, scope_info.version.encode())
        scope_spans = _field(1, scope) + b"".join(_field(2, encode_span(s)) for s in members)
        out.append(_field(1, resource + _field(2, scope_spans)))
    return b"".join(out)


class OtlpHttpExporter(SpanExporter):
    """POSTs protobuf to `{endpoint}/v1/traces` on one kept-alive connection."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path or "/v1/traces"
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._warned = 0.0

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._connection = kind(self.host, self.port, timeout=self.timeout)
        return self._connection

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_request(spans)
        headers = {"Content-Type": "application/x-protobuf"}
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
