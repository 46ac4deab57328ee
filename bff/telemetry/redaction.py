"""One redaction helper for logs, spans and errors: secrets never render.

Anything that may carry a credential is named here once: header and field names whose values
are secrets (`authorization`, `cookie`, `password`, tokens of every kind, API keys), and, for
free text, anything shaped like a bearer token, a JWT or a `password=` pair. Log lines, span
attributes and error messages all go through these functions before they leave the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

# Names (lower case, `-` and `_` alike) whose values are secrets wherever they appear.
SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "password",
        "passwd",
        "secret",
        "token",
        "access-token",
        "refresh-token",
        "id-token",
        "api-key",
        "x-api-key",
        "client-secret",
        "private-key",
    }
)

_SECRET_TEXT = re.compile(
    r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"  # Authorization schemes
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT, wherever it shows up
    r"|\b(password|passwd|secret|token|access_token|refresh_token|api_key|apikey)"
    r"(\s*[=:]\s*|\"\s*:\s*\")[^\s&\",;]+"  # key=value, key: value, "key": "value"
)


def is_secret_name(name: str) -> bool:
    """Whether a header, field or attribute called `name` holds a secret."""
    key = name.lower().replace("_", "-")
    return key in SECRET_NAMES or key.endswith(("-token", "-secret", "-password", "-key"))


def redact_text(text: str) -> str:
    """`text` with anything shaped like a credential replaced by `[redacted]`."""
    if not _maybe_secret(text):
        return text
    return _SECRET_TEXT.sub(_replace, text)


def redact_value(name: str, value: Any) -> Any:
    """`value` as it may be shown under `name`: hidden for a secret name, scrubbed if text."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    return value


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `values` safe to log (nested mappings included)."""
    return {k: redact_value(k, v) for k, v in values.items()}


def redact_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict safe to log."""
    return {
        name.decode("latin-1"): redact_value(name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
    }


def _maybe_secret(text: str) -> bool:
    """A cheap pre-check: most text (paths, messages) has none of the trigger words."""
    lowered = text.lower()
    return (
        "bearer" in lowered
        or "basic" in lowered
        or "eyj" in lowered
        or "pass" in lowered
        or "secret" in lowered
        or "token" in lowered
        or "key" in lowered
    )


def _replace(match: re.Match[str]) -> str:
    if match.group(1):  # "Bearer xyz" -> "Bearer [redacted]"
        return f"{match.group(1)} {REDACTED}"
    if match.group(2):  # "password=xyz" -> "password=[redacted]"
        return f"{match.group(2)}{match.group(3)}{REDACTED}"
    return REDACTED
