"""The OTLP protobuf encoding of finished spans, written straight to the wire format.

The SDK's encoder (`opentelemetry-exporter-otlp-proto-common`) builds a protobuf message object
per span, attribute and value and then serializes them: about as much CPU as creating the
span. This writes the same `ExportTraceServiceRequest` bytes directly, for a sixth of that:
it reads the spans' fields rather than their properties (a call each), and most of a span's
bytes are cached between exports: a gateway's spans repeat a few names and many attribute
pairs (`bff.upstream: users`, `http.response.status_code: 200`), so each distinct name and
(key, value) pair is encoded once and then copied. Should an SDK release keep its spans'
fields elsewhere (`LAYOUT_OK`, checked at import), the SDK's encoder is used instead.
`python -m bench.otlp_encoding` compares the two encoders; the tests decode this one's output
with the official `opentelemetry-proto` classes and compare it with the SDK's.

Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
`common/v1/common.proto` and `resource/v1/resource.proto`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

CACHE_LIMIT = 4096  # encoded names and attribute pairs kept; the cache starts over when full

_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack
_pack_times = struct.Struct("<BQBQ").pack  # span fields 7 and 8: start and end, fixed64
_pack_event_time = struct.Struct("<BQ").pack  # event field 1: time, fixed64
_SMALL = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:  # int64 as protobuf writes it: two's complement in ten bytes
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TAGS = [_varint(number << 3 | 2) for number in range(16)]  # length-delimited field tags


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or a sub-message."""
    size = len(payload)
    return _TAGS[number] + (_SMALL[size] if size < 128 else _varint(size)) + payload


def _uint_field(number: int, value: int) -> bytes:
    """A varint field (counts, enums); left out when zero, as protobuf does."""
    return _varint(number << 3) + _varint(value) if value else b""


# AnyValue


def _any_value(value: Any) -> bytes:
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(6, _key_values(1, value.items()))
    if value is None:
        return b""
    return _field(1, str(value).encode())


def _key_value(key: str, value: Any) -> bytes:
    return _field(1, key.encode()) + _field(2, _any_value(value))


def _key_values(number: int, items: Iterable[tuple[str, Any]]) -> bytes:
    """Repeated `KeyValue` field `number`, uncached (resources, events, links)."""
    return b"".join(_field(number, _key_value(key, value)) for key, value in items)


# (key, value) -> span field 9, encoded; str and int values apart (`True == 1 == 1.0` as keys)
_STR_PAIRS: dict[tuple[str, str], bytes] = {}
_INT_PAIRS: dict[tuple[str, int], bytes] = {}


def _span_attributes(attributes: dict[str, Any], out: list[bytes]) -> None:
    for item in attributes.items():
        kind = type(item[1])
        if kind is str:
            pairs: dict[Any, bytes] = _STR_PAIRS
        elif kind is int:
            pairs = _INT_PAIRS
        else:
            out.append(_field(9, _key_value(*item)))
            continue
        encoded = pairs.get(item)
        if encoded is None:
            encoded = _field(9, _key_value(*item))
            if len(pairs) >= CACHE_LIMIT:
                pairs.clear()
            pairs[item] = encoded
        out.append(encoded)


# Span


_NAMES: dict[str, bytes] = {}  # span name -> field 5, encoded
_FLAGS: dict[int, bytes] = {}  # span flags -> field 16 (fixed32), encoded
_INTERNAL, _SERVER, _CLIENT = SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT
_KINDS = {kind: b"\x30" + _varint(kind.value + 1) for kind in SpanKind}  # OTLP's start at 1
_KIND_INTERNAL, _KIND_SERVER, _KIND_CLIENT = _KINDS[_INTERNAL], _KINDS[_SERVER], _KINDS[_CLIENT]
_NO_STATUS = b"\x7a\x00"  # an empty status, present as the SDK writes it
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags: the parent's is_remote is known / true


def encode_span(span: ReadableSpan) -> bytes:
    """One `Span` message (without its field tag).

    It reads the span's fields (`span._name`, ...) rather than its properties: each property
    is a call, and a span has sixteen of them, which cost about as much as the encoding
    itself. `LAYOUT_OK` says whether this SDK's spans have those fields; `encode_request`
    uses the SDK's encoder when they do not.
    """
    context: Any = span._context  # a SpanContext: a tuple
    trace_id, span_id, _, trace_flags, trace_state = context[:5]
    parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:  # the shared empty one, mostly
        parts.append(_field(3, trace_state.to_header().encode()))
    flags = _HAS_IS_REMOTE | trace_flags  # the W3C trace flags in the low byte
    parent = span._parent
    if parent is not None:
        parts.append(b"\x22\x08" + parent[1].to_bytes(8, "big"))
        if parent[2]:  # is_remote
            flags |= _IS_REMOTE
    name = span._name
    encoded = _NAMES.get(name)
    if encoded is None:
        if len(_NAMES) >= CACHE_LIMIT:
            _NAMES.clear()
        encoded = _NAMES[name] = _field(5, name.encode())
    parts.append(encoded)
    kind = span._kind
    if kind is _INTERNAL:
        parts.append(_KIND_INTERNAL)
    elif kind is _CLIENT:
        parts.append(_KIND_CLIENT)
    elif kind is _SERVER:
        parts.append(_KIND_SERVER)
    else:
        parts.append(_KINDS[kind])
    parts.append(_pack_times(0x39, span._start_time or 0, 0x41, span._end_time or 0))
    attributes: Any = span._attributes
    if attributes:
        _span_attributes(attributes.copy(), parts)  # a plain dict (BoundedAttributes or dict)
        dropped = getattr(attributes, "dropped", 0)
        if dropped:
            parts.append(_uint_field(10, dropped))
    events = span._events
    if events:
        _events(events, parts)
        dropped = getattr(events, "dropped", 0)
        if dropped:
            parts.append(_uint_field(12, dropped))
    links = span._links
    if links:
        _links(links, parts)
        dropped = getattr(links, "dropped", 0)
        if dropped:
            parts.append(_uint_field(14, dropped))
    status = span._status
    if status.is_unset:  # only an error's status has a description
        parts.append(_NO_STATUS)
    else:
        body = _field(2, status.description.encode()) if status.description else b""
        parts.append(_field(15, body + _uint_field(3, status.status_code.value)))
    encoded = _FLAGS.get(flags)
    if encoded is None:
        encoded = _FLAGS[flags] = b"\x85\x01" + _pack_fixed32(flags)
    parts.append(encoded)
    return b"".join(parts)


def _layout_ok() -> bool:
    """Whether this SDK's spans keep their fields where `encode_span` reads them."""
    try:
        parent = SpanContext(5, 6, is_remote=True)
        attributes = BoundedAttributes(attributes={"a": 1})
        events: BoundedList = BoundedList(1)  # type: ignore[type-arg]
        links: BoundedList = BoundedList(1)  # type: ignore[type-arg]
        span = ReadableSpan(
            "n",
            SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState()),
            parent,
            attributes=attributes,
            events=events,
            links=links,
            kind=SpanKind.CLIENT,
            start_time=3,
            end_time=4,
        )
        return (
            span._name == "n"
            and tuple(span._context[:5]) == (1, 2, False, 1, span.context.trace_state)  # type: ignore[index]
            and span._parent[:3] == (5, 6, True)  # type: ignore[index]
            and span._kind is SpanKind.CLIENT
            and (span._start_time, span._end_time) == (3, 4)
            and span._attributes is attributes
            and (span._events, span._links) == (events, links)
            and span._status.is_unset
        )
    except Exception:  # any change of layout means: not this way
        return False


LAYOUT_OK = _layout_ok()


def _events(events: Sequence[Event], parts: list[bytes]) -> None:
    for event in events:
        body = _pack_event_time(0x09, event.timestamp) + _field(2, event.name.encode())
        body += _key_values(3, (event.attributes or {}).items())
        body += _uint_field(4, event.dropped_attributes)
        parts.append(_field(11, body))


def _links(links: Sequence[Link], parts: list[bytes]) -> None:
    for link in links:
        linked = link.context
        body = _field(1, linked.trace_id.to_bytes(16, "big"))
        body += _field(2, linked.span_id.to_bytes(8, "big"))
        if linked.trace_state:
            body += _field(3, linked.trace_state.to_header().encode())
        body += _key_values(4, (link.attributes or {}).items())
        body += _uint_field(5, link.dropped_attributes)
        remote = _HAS_IS_REMOTE | _IS_REMOTE if linked.is_remote else _HAS_IS_REMOTE
        body += b"\x35" + _pack_fixed32(remote)  # field 6, fixed32
        parts.append(_field(13, body))


# Request


_ENCODED: dict[int, tuple[object, bytes]] = {}  # id(resource or scope) -> it and its field


def _encoded(thing: Resource | InstrumentationScope | None) -> bytes:
    """The `resource` field of a ResourceSpans, or the `scope` field of a ScopeSpans."""
    hit = _ENCODED.get(id(thing))
    if hit is not None and hit[0] is thing:
        return hit[1]
    if isinstance(thing, Resource):
        encoded = _field(1, _key_values(1, thing.attributes.items()))
    elif thing is None:
        encoded = _field(1, b"")
    else:
        body = _field(1, thing.name.encode())
        if thing.version:
            body += _field(2, thing.version.encode())
        encoded = _field(1, body + _key_values(3, (thing.attributes or {}).items()))
    if len(_ENCODED) >= 64:
        _ENCODED.clear()
    _ENCODED[id(thing)] = (thing, encoded)  # held, so that its id stays its own
    return encoded


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """An `ExportTraceServiceRequest` of `spans`, grouped by resource, then by scope (as the
    SDK groups them: equal resources and scopes are one group)."""
    if not LAYOUT_OK:
        return bytes(encode_spans(spans).SerializeToString())
    groups: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    resource: Resource | None = None
    scope: InstrumentationScope | None = None
    members: list[bytes] = []
    for span in spans:
        if span.resource is not resource or (span.instrumentation_scope or None) is not scope:
            resource, scope = span.resource, span.instrumentation_scope or None
            members = groups.setdefault(resource, {}).setdefault(scope, [])
        body = encode_span(span)
        size = len(body)
        members.append(b"\x12" + (_SMALL[size] if size < 128 else _varint(size)) + body)
    out = []
    for group_resource, scopes in groups.items():
        resource_spans = [_encoded(group_resource)]
        for group_scope, encoded_spans in scopes.items():
            scope_spans = _encoded(group_scope) + b"".join(encoded_spans)
            if group_scope is not None and group_scope.schema_url:
                scope_spans += _field(3, group_scope.schema_url.encode())
            resource_spans.append(_field(2, scope_spans))
        if group_resource.schema_url:
            resource_spans.append(_field(3, group_resource.schema_url.encode()))
        out.append(_field(1, b"".join(resource_spans)))
    return b"".join(out)
