"""Log output: the access log line, and the `logging.format` of everything else.

The access log is one JSON object per request on the `bff.access` logger, whatever the format
(it is made for machines). Other records are JSON objects too with `logging.format: json`
(time, level, logger, message, and the request and trace ids when the record has them), or
`LEVEL logger: message` lines with `text`. Every message, field and traceback goes through the
redaction helper first: a token in an exception message never reaches the log.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any, TextIO

import orjson

from bff.telemetry.redaction import redact_text, redact_value

ACCESS_LOGGER = "bff.access"
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
_EXTRA_FIELDS = ("request_id", "trace_id", "client_id", "operation")

access_log = logging.getLogger(ACCESS_LOGGER)


def iso_time(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds: `2026-11-29T19:40:01.123Z`."""
    whole = int(epoch)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        + f".{int((epoch - whole) * 1000):03d}Z"
    )


def write_access(line: Mapping[str, Any]) -> None:
    """Log one access line (already free of secrets: it is built from known-safe fields).

    Where `configure_logging` set up the output and it is still in place (`bff serve`), the
    line goes straight to its stream, the lines of one turn of the event loop in one write:
    a `logging` record per request cost about a tenth of a passthrough GET's CPU. Anywhere
    else (an embedding app's own handlers, tests) it is an ordinary record of `bff.access`.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    sink = _direct
    if sink is not None and sink.handler in logging.root.handlers:
        sink.add(orjson.dumps(line).decode())
    else:
        access_log.info(orjson.dumps(line).decode())


class DirectAccess:
    """Access lines written to the configured handler's stream, batched per loop turn, under
    the handler's lock (so they never interleave with other records mid-line)."""

    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self.handler = handler
        self.pending: list[str] = []

    def add(self, text: str) -> None:
        self.pending.append(text)
        if len(self.pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop in this thread: now
                self.flush()

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        if not lines:
            return
        handler = self.handler
        with handler.lock or nullcontext():
            try:
                handler.stream.write("\n".join(lines) + "\n")
                handler.stream.flush()
            except (OSError, ValueError):  # the stream is gone (a closed pipe): like logging
                pass


_direct: DirectAccess | None = None


def _flush_direct() -> None:
    if _direct is not None:
        _direct.flush()


class BffFormatter(logging.Formatter):
    """`json` or `text`; access lines pass through as the JSON object they are."""

    def __init__(self, kind: str = "json") -> None:
        super().__init__(TEXT_FORMAT)
        self.kind = kind

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER:
            return record.getMessage()
        message = redact_text(record.getMessage())
        if self.kind == "text":
            text = f"{record.levelname} {record.name}: {message}"
            if record.exc_info:
                text += "\n" + redact_text(self.formatException(record.exc_info))
            return text
        line: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        for name in _EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = redact_value(name, value)
        if record.exc_info:
            line["error"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


def configure_logging(level: str, kind: str = "json", stream: TextIO | None = None) -> None:
    """Root logging for `bff serve` and its workers: one handler on stderr (or `stream`), our
    format; access lines go to it directly (`write_access`)."""
    global _direct
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(stream)
    handler.setFormatter(BffFormatter(kind))
    root.addHandler(handler)
    root.setLevel(level.upper())
    if _direct is not None:
        _direct.flush()
    else:
        atexit.register(_flush_direct)  # the last turn's lines
    _direct = DirectAccess(handler)
