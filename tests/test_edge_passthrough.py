"""What crosses the gateway in passthrough (SPEC section 15): `Host` checked and `Forwarded`
quoted as RFC 7239 says, `;` path parameters refused like dot segments, and the upstream's
`Server`, `X-Powered-By`, `Via`, hop-by-hop fields, `Set-Cookie` and `Date` filtered.

Requests go on raw sockets (`edge_wire`) so the `Host` and the path are sent exactly as
written; the recorder upstream keeps what reached it.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from bff.auth.principal import Principal
from bff.passthrough.forwarding import checked_host, client_fields, upstream_fields, upstream_head
from bff.upstream import Headers
from bff.upstream.request import InvalidRequest
from tests.edge_wire import (
    UPSTREAM_FIELDS,
    Recorder,
    connect,
    edge_gateway,
    head,
    read_response,
    send_all,
)


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[str, Recorder]]:
    with edge_gateway() as running:
        yield running


def request(url: str, raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    with connect(url) as sock:
        send_all(sock, raw)
        return read_response(sock)


def forwarded_to(recorder: Recorder, before: int) -> dict[str, str]:
    assert len(recorder.seen) == before + 1
    return dict(recorder.seen[-1]["headers"])


# Host and Forwarded


@pytest.mark.parametrize(
    "host",
    [
        'evil";for=1.2.3.4;proto=https',
        "a.example, for=6.6.6.6",
        "example.com:80;host=x",
        "user@example.com",
        "example.com:99999",
        "example.com:",
        "[::1",
        "[not:an:address]",
        "exa mple.com",
        "-",
        "example.com/path",
        "%65xample.com",
    ],
)
def test_a_host_that_is_no_host_and_port_is_400_and_goes_nowhere(
    edge: tuple[str, Recorder], host: str
) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    status, _, body = request(url, head("GET", "/api/rec/items", host=host))
    assert status == 400
    assert orjson.loads(body)["code"] == "BAD_USER_INPUT"
    assert len(recorder.seen) == before


def test_two_host_fields_are_400(edge: tuple[str, Recorder]) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    raw = head("GET", "/api/rec/items", [("Host", "other.example")], host="gateway.example")
    assert request(url, raw)[0] == 400
    assert len(recorder.seen) == before


@pytest.mark.parametrize(
    ("host", "quoted"),
    [
        ("gateway.example", '"gateway.example"'),
        ("gateway.example:8443", '"gateway.example:8443"'),
        ("127.0.0.1:8000", '"127.0.0.1:8000"'),
        ("[2001:db8::1]:8080", '"[2001:db8::1]:8080"'),
        ("GW_1.internal", '"GW_1.internal"'),
    ],
)
def test_forwarded_carries_a_valid_host_quoted(
    edge: tuple[str, Recorder], host: str, quoted: str
) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    status, _, _ = request(url, head("GET", "/api/rec/items", host=host))
    assert status == 200
    seen = forwarded_to(recorder, before)
    assert seen["forwarded"] == f'for="127.0.0.1";proto=http;host={quoted}'
    assert seen["x-forwarded-host"] == host
    assert seen["x-forwarded-for"] == "127.0.0.1" and seen["x-forwarded-proto"] == "http"


def test_a_client_s_forwarded_fields_are_replaced_not_passed(edge: tuple[str, Recorder]) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    forged = [
        ("Forwarded", "for=6.6.6.6;proto=https;host=bank.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "bank.example"),
        ("X-Forwarded-For", "6.6.6.6"),
    ]
    assert request(url, head("GET", "/api/rec/items", forged))[0] == 200
    seen = forwarded_to(recorder, before)
    assert seen["forwarded"] == 'for="127.0.0.1";proto=http;host="gateway"'
    assert (seen["x-forwarded-proto"], seen["x-forwarded-host"]) == ("http", "gateway")
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the peer is no trusted proxy


def fields_for(
    host: str | None, client: str, forwarded_for: str | None = None, trusted: bool = False
) -> dict[str, str]:
    from ipaddress import ip_network

    fields = [] if host is None else [(b"host", host.encode())]
    if forwarded_for is not None:
        fields.append((b"x-forwarded-for", forwarded_for.encode()))
    return upstream_fields(
        fields,
        principal=Principal(),
        request_id="r1",
        client=client,
        scheme="http",
        forward_authorization=False,
        trusted_proxies=[ip_network("10.0.0.0/8")] if trusted else [],
    )


def test_forwarded_quotes_an_ipv6_peer_in_brackets() -> None:
    out = fields_for("gw", "2001:db8::7")
    assert out["Forwarded"] == 'for="[2001:db8::7]";proto=http;host="gw"'
    assert out["X-Forwarded-For"] == "2001:db8::7"


def test_a_trusted_proxy_s_hops_are_kept_as_addresses_or_unknown() -> None:
    out = fields_for("gw", "10.0.0.2", '203.0.113.9, 2001:db8::1, x";for=evil, ', trusted=True)
    assert out["X-Forwarded-For"] == "203.0.113.9, 2001:db8::1, unknown, 10.0.0.2"
    assert out["Forwarded"] == (
        'for="203.0.113.9", for="[2001:db8::1]", for="unknown", for="10.0.0.2";proto=http;host="gw"'
    )


def test_without_a_host_forwarded_has_no_host() -> None:
    out = fields_for(None, "192.0.2.1")
    assert out["Forwarded"] == 'for="192.0.2.1";proto=http'
    assert "X-Forwarded-Host" not in out


@pytest.mark.parametrize("value", ["", "a", "a.b.c", "xn--bcher-kva.example:1", "[::1]:65535"])
def test_checked_host_accepts_hosts(value: str) -> None:
    assert checked_host(value) == value


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a:b:c", "[::g]", "a:65536", "é.example"])
def test_checked_host_refuses_the_rest(value: str) -> None:
    with pytest.raises(InvalidRequest):
        checked_host(value)


# ; path parameters


@pytest.mark.parametrize(
    "path",
    [
        "/api/rec/..;/admin",
        "/api/rec/.;/admin",
        "/api/rec/items/..;/..;/admin",
        "/api/rec/foo;x=1/../admin",
        "/api/rec/foo;x=1/admin",
        "/api/rec/items;jsessionid=abc",
        "/api/rec/%2e%2e;/admin",
        "/api/rec/%2E;/admin",
        "/api/rec/..%3b/admin",
        "/api/rec/..%3B/admin",
        "/api/rec/.%2e%3B/admin",
        "/api/rec/items/%3bx",
    ],
)
def test_a_segment_with_a_parameter_is_refused_like_a_dot_segment(
    edge: tuple[str, Recorder], path: str
) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    status, _, body = request(url, head("GET", path))
    assert status == 400
    assert orjson.loads(body)["code"] == "BAD_USER_INPUT"
    assert len(recorder.seen) == before


def test_a_semicolon_in_the_query_still_passes(edge: tuple[str, Recorder]) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    assert request(url, head("GET", "/api/rec/items?a=1;b=2"))[0] == 200
    assert len(recorder.seen) == before + 1


# What comes back


def test_the_upstream_s_identity_cookies_and_date_are_not_passed(
    edge: tuple[str, Recorder],
) -> None:
    status, fields, body = request(edge[0], head("GET", "/api/rec/items"))
    assert status == 200 and orjson.loads(body) == {"ok": True}
    names = [name for name, _ in fields]
    for hidden in ("server", "x-powered-by", "via", "set-cookie", "keep-alive"):
        assert hidden not in names, hidden
    assert names.count("date") == 1
    assert dict(fields)["date"] != "Mon, 01 Jan 2001 00:00:00 GMT"  # the gateway's own
    assert ("x-end-to-end", "kept") in fields


def test_a_route_that_lists_set_cookie_passes_every_cookie(edge: tuple[str, Recorder]) -> None:
    status, fields, _ = request(edge[0], head("GET", "/api/cookies/items"))
    assert status == 200
    cookies = [value for name, value in fields if name == "set-cookie"]
    assert cookies == ["session=upstream; Path=/", "theme=dark; Path=/"]
    names = [name for name, _ in fields]
    assert "server" not in names and names.count("date") == 1


def test_client_fields_filter_by_the_route_s_list() -> None:
    upstream = Headers(list(UPSTREAM_FIELDS))
    plain = dict(client_fields(upstream))
    assert set(plain) == {b"content-type", b"x-end-to-end"}
    listed = client_fields(upstream, frozenset({"server", "via"}))
    assert {n for n, _ in listed} == {b"content-type", b"x-end-to-end", b"server", b"via"}


def test_response_headers_are_checked_in_config() -> None:
    from bff.config import ConfigError, settings_from_dict

    base = {"upstreams": {"x": {"instances": [{"url": "http://127.0.0.1:1"}]}}}
    route = {"name": "r", "upstream": "x", "response_headers": ["Set-Cookie", "Server"]}
    settings = settings_from_dict({**base, "routes": [route]})
    assert settings.routes[0].response_headers == ["set-cookie", "server"]
    for bad in ("Transfer-Encoding", "Date", "not a name"):
        with pytest.raises(ConfigError) as raised:
            settings_from_dict({**base, "routes": [{**route, "response_headers": [bad]}]})
        assert "routes[0].response_headers[0]" in str(raised.value)


def head_for(fields: list[tuple[bytes, bytes]]) -> bytes:
    return upstream_head(
        fields,
        principal=Principal(sub="7", scopes=frozenset({"b", "a"})),
        request_id="r1",
        client="127.0.0.1",
        scheme="http",
        forward_authorization=False,
    )


def test_the_upstream_head_joins_repeats_drops_what_connection_names_and_adds_ours() -> None:
    head = head_for(
        [
            (b"host", b"gw:8080"),
            (b"cookie", b"a=1"),
            (b"accept", b"text/html"),
            (b"connection", b"keep-alive, x-hop"),
            (b"x-hop", b"secret"),
            (b"cookie", b"b=2"),
            (b"accept", b"*/*"),
            (b"x-user-id", b"999"),
        ]
    )
    assert head == (
        b"cookie: a=1; b=2\r\naccept: text/html, */*\r\n"
        b"X-User-Id: 7\r\nX-User-Scopes: a b\r\nX-Request-Id: r1\r\n"
        b"X-Forwarded-For: 127.0.0.1\r\n"
        b'Forwarded: for="127.0.0.1";proto=http;host="gw:8080"\r\n'
        b"X-Forwarded-Proto: http\r\nX-Forwarded-Host: gw:8080\r\n"
    )


@pytest.mark.parametrize(
    "fields",
    [
        [(b"x-a", b"one\x00two")],
        [(b"x-a", b"one\r\nx-injected: yes")],
        [(b"bad name", b"v")],
        [(b"host", b"a"), (b"host", b"b")],
        [(b"host", b"not a host")],
    ],
)
def test_the_upstream_head_refuses_what_could_split_or_mislead(
    fields: list[tuple[bytes, bytes]],
) -> None:
    with pytest.raises(InvalidRequest):
        head_for(fields)
