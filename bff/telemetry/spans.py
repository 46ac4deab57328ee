"""The gateway's recording span: what the SDK's span records, for about a quarter of its cost.

A Dashboard makes a dozen spans (server, operation, a batch and a client span per upstream
call), and the SDK's `Span` spent most of its cost on generality a gateway's own spans do not
need: a lock per span, every attribute value re-validated through `BoundedAttributes`, a bounded
list each for events and links made up front, the processor chain called at start and end,
and a copy of the span at end. `LiveSpan` is a plain object implementing the OpenTelemetry API
`Span`; values of the plain types (`str`, `int`, `float`, `bool`) are kept as given and anything
else is cleaned by the SDK's own `BoundedAttributes`; the span limits (`OTEL_*_LIMIT`) hold as in
the SDK. At `end` it hands the exporters the SDK's `ReadableSpan`, built with its public
constructor, so every SDK exporter and our OTLP encoder read it as they read the SDK's.
`python -m bench.span_cost` measures a Dashboard's span tree made by the SDK and by this.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import time_ns
from types import TracebackType

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

_PLAIN = frozenset((str, int, float, bool))
_UNSET = Status(StatusCode.UNSET)


@dataclass(frozen=True, slots=True)
class Recorder:
    """What every span of one tracer shares: where it goes when it ends, and its limits."""

    processor: SpanProcessor  # only `on_end` is called
    resource: Resource
    scope: InstrumentationScope
    limits: SpanLimits

    @property
    def room(self) -> int:
        """How many attributes a span takes as given (plain values, while below the count
        limit): none when string values have a length limit, every value is then cleaned."""
        if self.limits.max_span_attribute_length is not None:
            return 0
        limit = self.limits.max_span_attributes
        return sys.maxsize if limit is None else limit


class LiveSpan(trace_api.Span):
    """A started span that records; ended, it goes to its recorder's processor."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_recorder",
        "_room",
        "_start",
        "_status",
    )

    def __init__(
        self,
        recorder: Recorder,
        room: int,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
    ) -> None:
        self._recorder = recorder
        self._room = room
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._status = _UNSET
        self._events: Sequence[Event] = ()  # a BoundedList, as the SDK's, from the first
        self._links: Sequence[Link] = ()
        self._end: int | None = None
        self._attributes: dict[str, types.AnyValue] | BoundedAttributes = {}
        if attributes:
            self._add(attributes)
        self._start = time_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end is None:
            attributes = self._attributes
            if (
                type(value) in _PLAIN
                and type(attributes) is dict
                and len(attributes) < self._room
                and type(key) is str
                and key
            ):
                attributes[key] = value
            else:
                self._bounded()[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end is None:
            self._add(attributes)

    def _add(self, attributes: Mapping[str, types.AnyValue]) -> None:
        mine = self._attributes
        if type(mine) is dict and len(mine) + len(attributes) <= self._room:
            for key, value in attributes.items():  # a loop: `all(...)` costs twice as much
                if type(value) not in _PLAIN or type(key) is not str or not key:
                    break
            else:
                mine.update(attributes)
                return
        bounded = self._bounded()
        for key, value in attributes.items():
            bounded[key] = value

    def _bounded(self) -> BoundedAttributes:
        """The attributes as the SDK keeps them: values cleaned, limits held (the oldest
        attribute makes way for a new one), what was dropped counted."""
        attributes = self._attributes
        if type(attributes) is BoundedAttributes:
            return attributes
        limits = self._recorder.limits
        self._attributes = bounded = BoundedAttributes(
            limits.max_span_attributes,
            attributes,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )
        return bounded

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end is not None:
            return
        limits = self._recorder.limits
        events = self._events
        if not isinstance(events, BoundedList):
            self._events = events = BoundedList(limits.max_events)
        events.append(
            Event(name, _fixed(limits.max_event_attributes, limits, attributes), timestamp)
        )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end is not None or not (context.is_valid or attributes):
            return  # as the SDK: a link needs a valid context or attributes
        limits = self._recorder.limits
        links = self._links
        if not isinstance(links, BoundedList):
            self._links = links = BoundedList(limits.max_links)
        links.append(Link(context, _fixed(limits.max_link_attributes, limits, attributes)))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK: `OK` is final and `UNSET` changes nothing."""
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An `exception` event with the semantic conventions' attributes, as the SDK."""
        kind = type(exception)
        module = kind.__module__
        event: dict[str, types.AnyValue] = {
            "exception.type": kind.__qualname__
            if module in ("builtins", "")
            else f"{module}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end = time_ns() if end_time is None else end_time
        recorder = self._recorder
        recorder.processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=recorder.resource,
                attributes=self._attributes,
                events=self._events,
                links=self._links,
                kind=self._kind,
                status=self._status,
                start_time=self._start,
                end_time=end,
                instrumentation_scope=recorder.scope,
            )
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """`with span:` records an exception that leaves it and sets the error status, as the
        SDK's span does by default."""
        if exc is not None and self._end is None:
            self.record_exception(exc, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self.end()

    def __repr__(self) -> str:
        return f'LiveSpan(name="{self._name}", context={self._context})'


def _fixed(
    count: int | None, limits: SpanLimits, attributes: types.Attributes
) -> BoundedAttributes:
    """An event's or a link's attributes, cleaned and limited as the SDK's, then frozen."""
    return BoundedAttributes(
        count, attributes, immutable=True, max_value_len=limits.max_attribute_length
    )
