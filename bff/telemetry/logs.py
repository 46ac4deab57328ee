"""Log output: the access log line, and the `logging.format` of everything else.

The access log is one JSON object per request on the `bff.access` logger, whatever the format
(it is made for machines). Other records are JSON objects too with `logging.format: json`
(time, level, logger, message, and the request and trace ids when the record has them), or
`LEVEL logger: message` lines with `text`. Every message, field and traceback goes through the
redaction helper first: a token in an exception message never reaches the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

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
    """Log one access line (already free of secrets: it is built from known-safe fields)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(orjson.dumps(line).decode())


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


def configure_logging(level: str, kind: str = "json") -> None:
    """Root logging for `bff serve` and its workers: one handler on stderr, our format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(BffFormatter(kind))
    root.addHandler(handler)
    root.setLevel(level.upper())
