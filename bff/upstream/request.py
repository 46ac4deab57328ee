"""An outgoing request, encoded once per call and sent as-is by whichever instance is chosen.

Everything that does not depend on the instance is done here, once, however many attempts
follow: the path and query are percent-encoded, the JSON body is serialized with orjson, and
the header lines are rendered and checked. Only the request line's path prefix and the `Host`
field differ per instance; `bff.upstream.connections` adds them.

Methods, header names and values come partly from clients of the gateway (identity,
forwarded fields, and with REST passthrough, whole requests), so whatever could split the
request is refused here with `InvalidRequest` (the pool answers it as the caller's bad input):
a method or header name that is not an RFC 9110 token, and a value with CR, LF or NUL. Names
are compared in lower case, so `Content-Length ` or `Transfer-Encoding\t` cannot slip past the
framing filter, and hop-by-hop fields (RFC 9110 7.6.1), the framing and `Host` are ours to set.
A path with dot segments, escapes, backslashes or empty segments passes the policy of
`bff.upstream.paths` (canonical, or refused) before it is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from bff.upstream.failures import InvalidRequest
from bff.upstream.paths import normalise_path

__all__ = [
    "HOP_BY_HOP",
    "IDEMPOTENT",
    "InvalidRequest",  # defined with the error tree, re-exported here where it is raised
    "Params",
    "Request",
    "build_request",
    "encode_path",
    "encode_query",
    "field_name",
    "method_token",
    "render_fields",
]

Params = Mapping[str, str | int] | None

# Methods whose request may be sent twice with the effect of once (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Framing and hop-by-hop fields are ours to set: a caller's copy would contradict them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_DROPPED = HOP_BY_HOP | {"host", "content-length"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Header names already checked, lowered: names repeat (X-User-Id...), a dict hit is cheap.
_NAMES: dict[str, str] = {}
_NAMES_KEPT = 4096
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"  # RFC 3986 pchar plus "/" and existing %-escapes
_QUERY_SAFE = ",:@/"  # kept as is inside a query value; "+", "&", "=" and "#" are escaped
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Strings made only of characters kept as is: the common case, checked faster than quoted.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~%]*")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9,:@/\-._~]*")


class Request(msgspec.Struct, frozen=True, gc=False):
    """A request ready for the wire, less the request line's prefix and the `Host` field.

    A frozen struct: built in C on every call (a frozen dataclass costs ten times as much).
    `gc=False`: it holds only bytes and text.
    """

    method: str
    target: bytes  # percent-encoded path and query, ASCII
    fields: bytes  # rendered header lines, each ending in CRLF, framing included
    body: bytes
    request_id: bytes | None = None  # the X-Request-Id sent, which an echo must match

    def with_lines(self, lines: bytes) -> Request:
        """A copy with header lines already rendered and checked (`with_header`'s once for a
        request whose calls all send the same `traceparent`)."""
        return Request(self.method, self.target, self.fields + lines, self.body, self.request_id)

    def with_header(self, name: str, value: str) -> Request:
        """A copy with one more header line (per-attempt fields such as `traceparent`)."""
        lowered = field_name(name)
        if lowered in _DROPPED:
            raise InvalidRequest(f"header {name} is set by the gateway")
        _check_value(value)
        line = f"{name}: {value}\r\n".encode("latin-1")
        request_id = value.encode("latin-1") if lowered == "x-request-id" else self.request_id
        return Request(self.method, self.target, self.fields + line, self.body, request_id)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT

    @property
    def head_only(self) -> bool:
        return self.method == "HEAD"


def encode_path(path: str) -> str:
    """A canonical path (`normalise_path`'s) as a request target: what is not a pchar escaped."""
    return path if _PLAIN_PATH.fullmatch(path) else quote(path, safe=_PATH_SAFE)


def encode_query(params: Mapping[str, str | int]) -> str:
    """`a=1&ids=1,2` with every other reserved or non-ASCII character percent-encoded.

    A plain loop: a generator with a helper per part cost a batch call's one or two
    parameters two Python calls each, for a regex match that is all most values need."""
    plain = _PLAIN_QUERY.fullmatch
    parts = []
    for name, value in params.items():
        key = name if type(name) is str else str(name)
        text = value if type(value) is str else str(value)
        if not plain(key):
            key = quote(key, safe=_QUERY_SAFE)
        if not plain(text):
            text = quote(text, safe=_QUERY_SAFE)
        parts.append(f"{key}={text}")
    return "&".join(parts)


def field_name(name: str) -> str:
    """`name` in lower case, or InvalidRequest if it is not a token (no space, tab or colon)."""
    lowered = _NAMES.get(name)
    if lowered is None:
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest("a header name must be a token (RFC 9110)")
        lowered = name.lower()
        if len(_NAMES) < _NAMES_KEPT:
            _NAMES[name] = lowered
    return lowered


def method_token(method: str) -> str:
    """The method in upper case, or InvalidRequest if it is not a token."""
    if method in _KNOWN_METHODS:
        return method
    if not _TOKEN.fullmatch(method):
        raise InvalidRequest("the method must be a token (RFC 9110)")
    return method.upper()


def _check_value(value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        raise InvalidRequest("header values must not contain CR, LF or NUL")


def render_fields(headers: Mapping[str, str]) -> list[str]:
    """`Name: value` lines for the caller's headers, framing and hop-by-hop fields dropped,
    and so are the fields a `Connection` header names (they are hop-by-hop too)."""
    lines = []
    named: frozenset[str] = frozenset()
    known = _NAMES.get
    for name, value in headers.items():
        lowered = known(name) or field_name(name)  # a name seen before: no call
        if lowered in _DROPPED:
            if lowered == "connection":
                named = frozenset(t.strip().lower() for t in value.split(","))
            continue
        lines.append(f"{name}: {value}\r\n")
    if named:
        lines = [line for line in lines if line.partition(":")[0].lower() not in named]
    return lines


def build_request(
    method: str,
    path: str,
    *,
    params: Params = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    streamed: bool = False,
) -> Request:
    """Encode one call; InvalidRequest if the method or a header could break the framing.

    The body is `json` (serialized), raw `content`, or none. `streamed=True` leaves the body
    and its framing to `ConnectionPool.stream`, which sends it from an async iterator.
    """
    if method not in _KNOWN_METHODS:
        method = method_token(method)
    if not path.startswith("/"):
        path = f"/{path}"
    if "/." in path or "//" in path or "\\" in path or "%" in path:
        path = normalise_path(path)  # dot segments, encoded slashes...: canonical, or refused
    target = encode_path(path)
    if params:
        target = f"{target}?{encode_query(params)}"
    lines = render_fields(headers) if headers else []
    if json is not None:
        body = orjson.dumps(json)
        lines += ("Content-Type: application/json\r\n", f"Content-Length: {len(body)}\r\n")
    elif content is not None:
        body = content
        lines.append(f"Content-Length: {len(body)}\r\n")
    else:
        body = b""
        if method in _BODY_METHODS and not streamed:
            lines.append("Content-Length: 0\r\n")
    fields = "".join(lines)
    # Each line ends in the one CRLF we wrote: any other CR or LF came inside a name or value.
    n = len(lines)
    if fields.count("\n") != n or fields.count("\r") != n or "\0" in fields:
        raise InvalidRequest("header values must not contain CR, LF or NUL")
    request_id = None
    if headers:
        sent = headers.get("X-Request-Id") or headers.get("x-request-id")
        request_id = sent.encode("latin-1") if sent else None
    return Request(method, target.encode("ascii"), fields.encode("latin-1"), body, request_id)
