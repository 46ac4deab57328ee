"""An outgoing request, encoded once per call and sent as-is by whichever instance is chosen.

Everything that does not depend on the instance is done here, once, however many attempts
follow: the path and query are percent-encoded, the JSON body is serialized with orjson, and
the header lines are rendered and checked. Only the request line's path prefix and the `Host`
field differ per instance; `bff.upstream.connections` adds them.

Header values come partly from clients of the gateway (identity, forwarded fields), so a
value that could end a line is refused here: a CR or LF would let it smuggle a header or a
second request onto a kept-alive connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

Params = Mapping[str, str | int] | None

# Methods whose request may be sent twice with the effect of once (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Framing is ours to set: a caller's copy would contradict it (request smuggling).
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # RFC 3986 pchar plus "/" and existing %-escapes
_QUERY_SAFE = ",:@/"  # kept as is inside a query value; "+", "&", "=" and "#" are escaped
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Strings made only of characters kept as is: the common case, checked faster than quoted.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~%]*")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9,:@/\-._~]*")


@dataclass(slots=True)
class Request:
    """A request ready for the wire, less the request line's prefix and the `Host` field.

    Read-only by convention (built on every call; a frozen dataclass costs 3x as much).
    """

    method: str
    target: bytes  # percent-encoded path and query, ASCII
    fields: bytes  # rendered header lines, each ending in CRLF, framing included
    body: bytes

    def with_header(self, name: str, value: str) -> Request:
        """A copy with one more header line (per-attempt fields such as `traceparent`)."""
        line = f"{name}: {value}\r\n"
        if line.count("\n") != 1 or line.count("\r") != 1 or "\0" in line or ":" in name:
            raise ValueError("header names and values must not contain CR, LF or NUL")
        return Request(self.method, self.target, self.fields + line.encode("latin-1"), self.body)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT

    @property
    def head_only(self) -> bool:
        return self.method == "HEAD"


def encode_query(params: Mapping[str, str | int]) -> str:
    """`a=1&ids=1,2` with every other reserved or non-ASCII character percent-encoded."""
    return "&".join(f"{_query_part(k)}={_query_part(v)}" for k, v in params.items())


def _query_part(value: str | int) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _PLAIN_QUERY.fullmatch(text) else quote(text, safe=_QUERY_SAFE)


def render_fields(headers: Mapping[str, str]) -> list[str]:
    """`Name: value` lines for the caller's headers, framing fields dropped."""
    return [f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() not in _FRAMING]


def build_request(
    method: str,
    path: str,
    *,
    params: Params = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Request:
    """Encode one call; ValueError if a header could break the framing."""
    method = method.upper()
    if not path.startswith("/"):
        path = f"/{path}"
    target = path if _PLAIN_PATH.fullmatch(path) else quote(path, safe=_PATH_SAFE)
    if params:
        target = f"{target}?{encode_query(params)}"
    lines = render_fields(headers) if headers else []
    if json is not None:
        body = orjson.dumps(json)
        lines += ("Content-Type: application/json\r\n", f"Content-Length: {len(body)}\r\n")
    else:
        body = b""
        if method in _BODY_METHODS:
            lines.append("Content-Length: 0\r\n")
    fields = "".join(lines)
    # Each line ends in the one CRLF we wrote: any other CR or LF came inside a name or value.
    n = len(lines)
    if fields.count("\n") != n or fields.count("\r") != n or "\0" in fields:
        raise ValueError("header names and values must not contain CR, LF or NUL")
    return Request(method, target.encode("ascii"), fields.encode("latin-1"), body)
