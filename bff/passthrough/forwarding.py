"""Header hygiene of a passthrough request, both ways.

To the upstream: the client's end-to-end fields pass; hop-by-hop fields (and those named in
`Connection`), framing, `Host`, identity fields a client could forge (`X-User-Id`,
`X-User-Scopes`) and `Authorization` (unless the route forwards it) do not. The gateway adds
who is calling, the request id (which the upstream may echo: the client checks it) and the
`X-Forwarded-*`/`Forwarded` fields, believing a client's own `X-Forwarded-For` only when the
peer is a trusted proxy.

To the client: the upstream's end-to-end fields pass; hop-by-hop and framing fields do not
(the gateway frames its own response), except a single valid `Content-Length`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

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
# The request stage sets the response's X-Request-Id: the upstream's echo would repeat it.
_DROPPED_DOWN = HOP_BY_HOP | {"content-length", "x-request-id"}


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
    forwarded_for = ""
    for raw_name, raw_value in fields:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name == "host":
            host = value
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
    out.update(principal.identity_headers())
    out["X-Request-Id"] = request_id
    if client is not None:
        trusted = forwarded_for and _is_trusted(client, trusted_proxies)
        out["X-Forwarded-For"] = f"{forwarded_for}, {client}" if trusted else client
        out["Forwarded"] = f'for="{client}";proto={scheme}' + (f';host="{host}"' if host else "")
    out["X-Forwarded-Proto"] = scheme
    if host:
        out["X-Forwarded-Host"] = host
    return out


def client_fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    """The upstream response's fields to pass to the client."""
    out = []
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
