"""The id of the request being served, in every log line written while serving it.

The request stage sets `REQUEST_ID` for the request's task (and so for every task it starts:
asyncio copies the context), and `install_log_records` makes each `LogRecord` carry it as
`record.request_id` ("-" outside a request), whatever logger, handler or format writes it.
Cost: one context-variable set and reset per request, one read per log record. (A record
factory rather than a handler filter, so handlers added later, by uvicorn or a JSON log format,
see it too; as with any record attribute, do not pass `request_id` in a log call's `extra`.)

This module imports nothing else of ours, so any layer may log with the request id.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

NO_REQUEST = "-"

REQUEST_ID: ContextVar[str] = ContextVar("bff_request_id", default=NO_REQUEST)


def current_request_id() -> str:
    """The id of the request being served in this context, or "-" outside one."""
    return REQUEST_ID.get()


def install_log_records() -> None:
    """Give every log record made in this process a `request_id` attribute (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_request_id", False):
        return

    def record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    record_with_request_id.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_with_request_id)
