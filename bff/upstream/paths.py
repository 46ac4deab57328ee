"""The path policy for requests whose path a client chose (REST passthrough).

A path travels through several parsers (ours, maybe a proxy, the upstream's framework) and
they disagree about `..`, `%2e%2e`, encoded slashes, backslashes and empty segments: one of
them reading `/orders/..%2Fadmin` as `/admin` is how a route that allows `/orders/*` ends up
serving something else. So the gateway does not guess how the upstream will read an ambiguous
path: `normalise_path` returns the one canonical spelling that every parser reads the same way,
or refuses the path with `InvalidPath` (answered as the caller's bad input, 400).

Canonical means: percent-escapes of unreserved characters decoded (RFC 3986 6.2.2.2), every
other escape in upper case, characters outside `pchar` escaped, and the path made only of
non-empty segments (a trailing slash kept). Refused: dot segments in any spelling, `%2F`,
`%5C` and backslashes, NUL and other control characters, malformed escapes, and empty
segments (`//x`, which some parsers take for a host).
"""

from __future__ import annotations

import re

from bff.upstream.failures import InvalidRequest

MAX_PATH = 4096  # characters: longer paths are refused, not truncated

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCHAR_LITERAL = _UNRESERVED | frozenset("!$&'()*+,;=:@")
# Paths made only of unescaped pchar segments under a leading "/" (dots checked apart).
_PLAIN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})|%")
# Characters a path segment may not carry in any spelling: separators and control bytes.
_FORBIDDEN_BYTES = frozenset({0x2F, 0x5C, 0x7F} | set(range(0x20)))


class InvalidPath(InvalidRequest):
    """A path the gateway will not forward; the message says why, never echoing it."""


def normalise_path(raw: str) -> str:
    """`raw` (as received: percent-encoded, with or without its leading `/`) in canonical
    form, starting with `/`; InvalidPath if it is ambiguous or could escape its route."""
    if len(raw) > MAX_PATH:
        raise InvalidPath(f"the path is longer than {MAX_PATH} characters")
    if _PLAIN.fullmatch(raw) and "//" not in raw and "/." not in raw:
        return raw  # already canonical: the common case, checked at C speed
    if "\\" in raw:
        raise InvalidPath("the path contains a backslash")
    body = raw[1:] if raw.startswith("/") else raw
    if not body:
        return "/"
    segments = body.split("/")
    trailing = segments[-1] == ""
    if trailing:
        segments.pop()
    canonical = []
    for segment in segments:
        if not segment:
            raise InvalidPath("the path has an empty segment (//)")
        text = _segment(segment)
        if text in (".", ".."):
            raise InvalidPath("the path has a dot segment (. or ..)")
        canonical.append(text)
    return "/" + "/".join(canonical) + ("/" if trailing else "")


def _segment(segment: str) -> str:
    out: list[str] = []
    position = 0
    for match in _ESCAPE.finditer(segment):
        out.append(_literal(segment[position : match.start()]))
        hex_digits = match.group(1)
        if hex_digits is None:
            raise InvalidPath("the path has a malformed percent-escape")
        byte = int(hex_digits, 16)
        if byte in _FORBIDDEN_BYTES:
            raise InvalidPath("the path has an encoded slash, backslash or control character")
        char = chr(byte)
        out.append(char if char in _UNRESERVED else f"%{byte:02X}")
        position = match.end()
    out.append(_literal(segment[position:]))
    return "".join(out)


def _literal(text: str) -> str:
    """Unescaped characters: kept when they are pchar, escaped (UTF-8) otherwise."""
    if all(c in _PCHAR_LITERAL for c in text):
        return text
    out = []
    for char in text:
        if char in _PCHAR_LITERAL:
            out.append(char)
            continue
        for byte in char.encode("utf-8"):
            if byte in _FORBIDDEN_BYTES:
                raise InvalidPath("the path has a control character")
            out.append(f"%{byte:02X}")
    return "".join(out)
