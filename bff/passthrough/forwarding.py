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
from bff.upstream.request import HOP_BY_HOP, InvalidRequest, field_name

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
_OURS_RAW = frozenset(name.encode() for name in _OURS)
_HOP_BY_HOP_RAW = frozenset(name.encode() for name in HOP_BY_HOP)
# Client field names found to be tokens (bounded: a client may send any names).
_CHECKED_NAMES: set[bytes] = set()
_NAMES_KEPT = 4096
# Host fields found valid, as sent and as checked (clients send a few, over and over).
_HOSTS: dict[bytes, str] = {}
# The forwarding lines of a peer without a trusted chain, by (peer, host, scheme).
_FORWARDED: dict[tuple[str | None, str, str], tuple[bytes, int]] = {}
# The request stage sets the response's X-Request-Id: the upstream's echo would repeat it;
# the server sets Date.
_DROPPED_DOWN = HOP_BY_HOP | {"content-length", "x-request-id", "date"}
# Withheld from the client unless the route's `response_headers` names them.
WITHHELD = frozenset({"server", "x-powered-by", "via", "set-cookie"})
_DROPPED_DOWN_RAW = frozenset(name.encode() for name in _DROPPED_DOWN)
_WITHHELD_RAW = frozenset(name.encode() for name in WITHHELD)
_WITHHELD_BY_ROUTE: dict[frozenset[str], frozenset[bytes]] = {}
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
    """`upstream_head`'s fields by name (what an upstream reads of them)."""
    head = upstream_head(
        fields,
        principal=principal,
        request_id=request_id,
        client=client,
        scheme=scheme,
        forward_authorization=forward_authorization,
        trusted_proxies=trusted_proxies,
    )
    lines = head.decode("latin-1").split("\r\n")[:-1]
    return dict(line.split(": ", 1) for line in lines)


def upstream_head(
    fields: Sequence[tuple[bytes, bytes]],
    *,
    principal: Principal,
    request_id: str,
    client: str | None,
    scheme: str,
    forward_authorization: bool,
    trusted_proxies: Sequence[Network] = (),
) -> bytes:
    """The header lines to send upstream (`name: value\r\n` each), from the client's fields
    (ASGI: lower-case byte names), rendered in one pass over the bytes as they came.

    A field repeated by the client is sent once, its values joined (`; ` for Cookie). A name
    that is no token or a value with CR, LF or NUL is refused (InvalidRequest), as the
    request encoder refuses them (`bff.upstream.request`).
    """
    out: dict[bytes, bytes] = {}
    host = b""
    hosts = 0
    forwarded_for = b""
    connection: list[tuple[bytes, bytes]] | None = None
    for name, value in fields:
        if name in _OURS_RAW or name in _HOP_BY_HOP_RAW:
            if name == b"host":
                host, hosts = value, hosts + 1
            elif name == b"x-forwarded-for":
                forwarded_for = forwarded_for + b", " + value if forwarded_for else value
            elif name == b"connection":
                connection = [*(connection or ()), (name, value)]
            continue
        if name == b"authorization" and not forward_authorization:
            continue
        prior = out.get(name)
        if prior is None:
            if name not in _CHECKED_NAMES:
                _check_name(name)
            out[name] = value
        else:
            out[name] = prior + (b"; " if name == b"cookie" else b", ") + value
    if connection is not None:  # the fields it names are hop-by-hop too
        named = _connection_named(connection)
        out = {name: value for name, value in out.items() if name not in named}
    if hosts > 1:
        raise InvalidRequest("the request has more than one Host field")
    checked = _HOSTS.get(host)
    if checked is None:
        checked = checked_host(host.decode("latin-1"))
        if len(_HOSTS) < _NAMES_KEPT:
            _HOSTS[host] = checked
    lines = [b"%b: %b\r\n" % item for item in out.items()]
    for key, text in principal.identity_headers().items():
        lines.append(f"{key}: {text}\r\n".encode("latin-1"))
    lines.append(b"X-Request-Id: %b\r\n" % request_id.encode("latin-1"))
    scheme = "https" if scheme == "https" else "http"
    hops: list[str] | None = None
    if client is not None and forwarded_for and _is_trusted(client, trusted_proxies):
        listed = forwarded_for.decode("latin-1").split(",")
        hops = [_node(h.strip()) for h in listed if h.strip()] + [client]
    peer = (client, checked, scheme)
    suffix = _FORWARDED.get(peer) if hops is None else None
    if suffix is None:
        suffix = _forwarded_lines(client if hops is None else hops, checked, scheme)
        if hops is None and len(_FORWARDED) < _NAMES_KEPT:
            _FORWARDED[peer] = suffix  # a client's requests repeat it: worked out once
    lines.append(suffix[0])
    head = b"".join(lines)
    # Each line ends in the one CRLF written here: any other CR or LF came inside a value.
    n = len(lines) - 1 + suffix[1]
    if head.count(b"\n") != n or head.count(b"\r") != n or b"\0" in head:
        raise InvalidRequest("header values must not contain CR, LF or NUL")
    return head


def _forwarded_lines(hops: list[str] | str | None, host: str, scheme: str) -> tuple[bytes, int]:
    """The `X-Forwarded-*` and `Forwarded` lines for `hops` (the peer alone, or a trusted
    proxy's chain and the peer), and how many lines they are."""
    ours = []
    if hops is not None:
        hops = [hops] if isinstance(hops, str) else hops
        ours.append(f"X-Forwarded-For: {', '.join(hops)}\r\n")
        elements = [f"for={_quoted(_for_value(hop))}" for hop in hops]
        elements[-1] += f";proto={scheme}" + (f";host={_quoted(host)}" if host else "")
        ours.append(f"Forwarded: {', '.join(elements)}\r\n")
    ours.append(f"X-Forwarded-Proto: {scheme}\r\n")
    if host:
        ours.append(f"X-Forwarded-Host: {host}\r\n")
    return "".join(ours).encode("latin-1"), len(ours)


def _check_name(name: bytes) -> None:
    """InvalidRequest unless `name` is a token; remembered once checked (names repeat)."""
    field_name(name.decode("latin-1"))
    if len(_CHECKED_NAMES) < _NAMES_KEPT and len(name) <= 64:  # long ones are rare
        _CHECKED_NAMES.add(name)


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
    withheld = _WITHHELD_RAW if not passed else _withheld_raw(passed)
    named: frozenset[bytes] = frozenset()
    length: bytes | None = None
    lengths = 0
    chunked = False
    for name, value in headers.raw:
        lowered = name.lower()
        if lowered in _DROPPED_DOWN_RAW:
            if lowered == b"content-length":
                length, lengths = value.strip(), lengths + 1
            elif lowered == b"transfer-encoding":
                chunked = True
            elif lowered == b"connection":
                named = _connection_named([(lowered, value)])
            continue
        if lowered in withheld:
            continue
        out.append((lowered, value))
    if named:
        out = [(n, v) for n, v in out if n not in named]
    if lengths == 1 and not chunked and length is not None and length.isdigit():
        out.append((b"content-length", length))
    return out


def _withheld_raw(passed: frozenset[str]) -> frozenset[bytes]:
    """`WITHHELD` less a route's `response_headers`, as byte names (worked out once each)."""
    withheld = _WITHHELD_BY_ROUTE.get(passed)
    if withheld is None:
        withheld = frozenset(name.encode("latin-1") for name in WITHHELD - passed)
        _WITHHELD_BY_ROUTE[passed] = withheld  # one per distinct list in the config
    return withheld


def _connection_named(fields: RawFields) -> frozenset[bytes]:
    """The names a `Connection` field lists (hop-by-hop too), lower-case."""
    named: set[bytes] = set()
    for name, value in fields:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b","))
    return frozenset(named)


def _is_trusted(client: str, networks: Sequence[Network]) -> bool:
    try:
        address = ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in networks)
