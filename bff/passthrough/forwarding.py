"""Header hygiene of a passthrough request, both ways.

To the upstream: the client's end-to-end fields pass; hop-by-hop fields (and those named in
`Connection`), framing, `Host`, identity fields a client could forge (`X-User-Id`,
`X-User-Scopes`) and `Authorization` (unless the route forwards it) do not. The gateway adds
who is calling, the request id (which the upstream may echo: the client checks it) and the
`X-Forwarded-*`/`Forwarded` fields, built from checked values only: the peer's address, the
client's `X-Forwarded-For` hops only when the peer is a trusted proxy (a hop that is no IP
address becomes `unknown`), and a `Host` that is a host name or IP literal with an optional
port (anything else, or two of them, is refused: 400). `Forwarded` quotes its values as
RFC 7239 requires (`for="[2001:db8::1]"`, `host="example.com:8080"`).

To the client: the upstream's end-to-end fields pass; hop-by-hop and framing fields do not
(the gateway frames its own response), except a single valid `Content-Length`; nor do
`Date` (the server sends its own, so there is exactly one), `Server`, `X-Powered-By` and
`Via` (what runs behind the gateway is nobody's business) or `Set-Cookie` (an upstream's
cookie would be set on the gateway's origin), unless the route lists them in
`response_headers`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

from bff.auth.principal import Principal
from bff.upstream import Headers
from bff.upstream.request import HOP_BY_HOP, InvalidRequest

Network = IPv4Network | IPv6Network
RawFields = Iterable[tuple[bytes, bytes]]

# Set by the gateway alone: what a client sends under these names never reaches an upstream.
_OURS = frozenset(
    {
        "host",
        "content-length",
        "x-user-id",
        "x-user-scopes",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    }
)
# The request stage sets the response's X-Request-Id: the upstream's echo would repeat it;
# the server sets Date.
_DROPPED_DOWN = HOP_BY_HOP | {"content-length", "x-request-id", "date"}
# Withheld from the client unless the route's `response_headers` names them.
WITHHELD = frozenset({"server", "x-powered-by", "via", "set-cookie"})
# A Host field: a name (letters, digits, "-", "_", dots) or an IP literal, and a port.
_HOST = re.compile(
    r"(?:([A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,252}))|\[([0-9A-Fa-f:.]{2,45})\])(?::([0-9]{1,5}))?"
)


def body_framing(fields: RawFields) -> int | None:
    """The request body's length: an int from Content-Length, -1 for chunked, None without a
    body. InvalidRequest for framing that two parsers could read differently (smuggling)."""
    lengths = []
    chunked = False
    for name, value in fields:
        if name == b"content-length":
            lengths.append(value.strip())
        elif name == b"transfer-encoding":
            chunked = True
    if chunked and lengths:
        raise InvalidRequest("both Content-Length and Transfer-Encoding")
    if chunked:
        return -1
    if not lengths:
        return None
    if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
        raise InvalidRequest("a missing, repeated or malformed Content-Length")
    return int(lengths[0])


def upstream_fields(
    fields: Sequence[tuple[bytes, bytes]],
    *,
    principal: Principal,
    request_id: str,
    client: str | None,
    scheme: str,
    forward_authorization: bool,
    trusted_proxies: Sequence[Network] = (),
) -> dict[str, str]:
    """The fields to send upstream, from the client's (ASGI: lower-case byte names)."""
    named = _connection_named(fields)
    out: dict[str, str] = {}
    host = ""
    hosts = 0
    forwarded_for = ""
    for raw_name, raw_value in fields:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name == "host":
            host, hosts = value, hosts + 1
        elif name == "x-forwarded-for":
            forwarded_for = f"{forwarded_for}, {value}" if forwarded_for else value
        if name in _OURS or name in HOP_BY_HOP or name in named:
            continue
        if name == "authorization" and not forward_authorization:
            continue
        if name in out:
            out[name] = f"{out[name]}{'; ' if name == 'cookie' else ', '}{value}"
        else:
            out[name] = value
    if hosts > 1:
        raise InvalidRequest("the request has more than one Host field")
    host = checked_host(host)
    scheme = "https" if scheme == "https" else "http"
    out.update(principal.identity_headers())
    out["X-Request-Id"] = request_id
    if client is not None:
        hops = [client]  # the socket's peer address, as the server gives it
        if forwarded_for and _is_trusted(client, trusted_proxies):
            hops[:0] = [_node(h.strip()) for h in forwarded_for.split(",") if h.strip()]
        out["X-Forwarded-For"] = ", ".join(hops)
        elements = [f"for={_quoted(_for_value(hop))}" for hop in hops]
        elements[-1] += f";proto={scheme}" + (f";host={_quoted(host)}" if host else "")
        out["Forwarded"] = ", ".join(elements)
    out["X-Forwarded-Proto"] = scheme
    if host:
        out["X-Forwarded-Host"] = host
    return out


def checked_host(value: str) -> str:
    """`value` of a `Host` field if it is a host and optional port ("" stays ""): a name, an
    IPv4 address or a bracketed IPv6 address; InvalidRequest otherwise."""
    if not value:
        return value
    match = _HOST.fullmatch(value)
    if match is None:
        raise InvalidRequest("the Host field is not a host name or address with a port")
    literal, port = match.group(2), match.group(3)
    if literal is not None:
        try:
            IPv6Address(literal)
        except ValueError:
            raise InvalidRequest("the Host field has an invalid IPv6 address") from None
    if port is not None and int(port) > 65535:
        raise InvalidRequest("the Host field has a port beyond 65535")
    return value


def _node(hop: str) -> str:
    """An address as X-Forwarded-For carries it: canonical, or `unknown` if it is none."""
    try:
        return str(ip_address(hop))
    except ValueError:
        return "unknown"


def _for_value(address: str) -> str:
    """A `for=` node (RFC 7239 section 6): an IPv6 address goes in brackets."""
    return f"[{address}]" if ":" in address else address


def _quoted(value: str) -> str:
    """An RFC 7239 value as a quoted-string (RFC 9110 5.6.4): `"` and `\\` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_fields(
    headers: Headers, passed: frozenset[str] = frozenset()
) -> list[tuple[bytes, bytes]]:
    """The upstream response's fields to pass to the client; `passed` (lower-case names) are
    the route's `response_headers`, which lets those of `WITHHELD` through."""
    out = []
    withheld = WITHHELD - passed if passed else WITHHELD
    named: frozenset[str] = frozenset()
    length: bytes | None = None
    lengths = 0
    chunked = False
    for name, value in headers.raw:
        lowered = name.lower()
        text = lowered.decode("latin-1")
        if text in _DROPPED_DOWN:
            if text == "content-length":
                length, lengths = value.strip(), lengths + 1
            elif text == "transfer-encoding":
                chunked = True
            elif text == "connection":
                named = _connection_named([(lowered, value)])
            continue
        if text in withheld:
            continue
        out.append((lowered, value))
    if named:
        out = [(n, v) for n, v in out if n.decode("latin-1") not in named]
    if lengths == 1 and not chunked and length is not None and length.isdigit():
        out.append((b"content-length", length))
    return out


def _connection_named(fields: RawFields) -> frozenset[str]:
    named: set[str] = set()
    for name, value in fields:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.decode("latin-1").split(","))
    return frozenset(named)


def _is_trusted(client: str, networks: Sequence[Network]) -> bool:
    try:
        address = ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in networks)
