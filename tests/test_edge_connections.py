"""Client connections at the edge (SPEC section 15): head size and field count (431, nothing
upstream), header, body and idle timeouts, the connection cap, and clients that go away.

Every request is written on a raw socket; the timeouts are configured short (0.3 s) so each
test is over in about a second, and every read is bounded (`edge_wire.WAIT`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import orjson
import pytest

from bff.config import ConfigError, ServerConfig, settings_from_dict
from bff.serving import EdgeLimits
from tests.edge_wire import (
    WAIT,
    Recorder,
    closed_by_peer,
    connect,
    edge_gateway,
    head,
    read_response,
    send_all,
)

SHORT = 0.3  # seconds: every timeout of the module's gateway
KIB = 1024


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[str, Recorder]]:
    """A gateway with the embedded head limits and short timeouts."""
    with edge_gateway(header_timeout=SHORT, body_timeout=SHORT, idle_timeout=SHORT) as running:
        yield running


def exchange(url: str, request: bytes) -> tuple[int, bytes]:
    with connect(url) as sock:
        send_all(sock, request)
        status, _, body = read_response(sock)
        return status, body


# Head limits


def test_embedded_defaults_are_the_spec_s() -> None:
    server = ServerConfig()
    assert (server.max_header_size, server.max_header_count) == (32 * KIB, 100)
    assert (server.header_timeout, server.body_timeout, server.idle_timeout) == (10, 30, 60)
    assert server.max_connections == 10_000
    assert EdgeLimits() == EdgeLimits.of_server(server)


@pytest.mark.parametrize("target", ["/graphql?query=%7B__typename%7D", "/api/rec/items"])
def test_a_head_just_within_the_limits_is_served_and_just_past_them_refused(
    edge: tuple[str, Recorder], target: str
) -> None:
    url, recorder = edge
    size = [(f"x-pad-{i}", "v" * 1000) for i in range(30)]  # about 30 KiB
    count = [(f"x-n{i}", "1") for i in range(99)]  # and Host: 100 fields
    for fields in (size, count):
        before = len(recorder.seen)
        assert exchange(url, head("GET", target, fields))[0] == 200
        if target.startswith("/api"):
            assert recorder.seen[-1]["target"] == "/items"
            assert len(recorder.seen) == before + 1
    assert exchange(url, head("GET", target, [*size, ("x-pad-30", "v" * 2500)]))[0] == 431
    assert exchange(url, head("GET", target, [*count, ("x-n99", "1")]))[0] == 431


def oversized_heads() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    yield "one 40 KiB field", [("x-big", "a" * 40 * KIB)]
    yield "33 KiB over many fields", [(f"x-f{i}", "b" * 1000) for i in range(34)]
    yield "101 fields", [(f"x-n{i}", "1") for i in range(100)]  # with Host: 101
    yield "500 tiny fields", [(f"x{i}", "") for i in range(500)]
    yield "a cookie of 8 MB", [("cookie", "c=" + "d" * 8_000_000)]


@pytest.mark.parametrize("target", ["/graphql?query=%7B__typename%7D", "/api/rec/items"])
@pytest.mark.parametrize(("case", "fields"), list(oversized_heads()))
def test_an_oversized_head_gets_431_and_nothing_goes_upstream(
    edge: tuple[str, Recorder], target: str, case: str, fields: list[tuple[str, str]]
) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    with connect(url) as sock:
        send_all(sock, head("GET", target, fields))
        status, received, body = read_response(sock)
        assert status == 431, case
        assert ("connection", "close") in received
        assert orjson.loads(body)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert closed_by_peer(sock, WAIT) is not None
    assert len(recorder.seen) == before  # nothing of it reached an upstream


def test_a_long_request_target_gets_431(edge: tuple[str, Recorder]) -> None:
    url, recorder = edge
    before = len(recorder.seen)
    status, _ = exchange(url, head("GET", "/api/rec/" + "p" * 40 * KIB))
    assert status == 431
    assert len(recorder.seen) == before


def test_a_head_that_never_ends_is_refused_once_past_the_limit(
    edge: tuple[str, Recorder],
) -> None:
    """One field value sent piece by piece, never finished: refused by the bytes received,
    without waiting for the field to end."""
    url, _ = edge
    with connect(url) as sock:
        send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Endless: ")
        for _ in range(40):
            send_all(sock, b"e" * KIB)
        status, _, _ = read_response(sock)
        assert status == 431


def test_a_head_in_many_reads_is_measured_whole(edge: tuple[str, Recorder]) -> None:
    """A 30 KiB head sent a KiB at a time is served; the same with 4 KiB more is refused."""
    url, _ = edge
    for extra, status in ((0, 200), (4 * KIB, 431)):
        raw = head("GET", "/healthz", [("x-pad", "p" * (30 * KIB + extra))])
        with connect(url) as sock:
            for i in range(0, len(raw), KIB):
                send_all(sock, raw[i : i + KIB])
                time.sleep(0.002)
            assert read_response(sock)[0] == status


def test_pipelined_requests_are_each_measured_alone(edge: tuple[str, Recorder]) -> None:
    """Three 20 KiB heads and a 40 KiB one in one write: the three are within the limit and
    answered, the fourth is refused."""
    one = head("GET", "/healthz", [("x-pad", "p" * 20 * KIB)])
    big = head("GET", "/healthz", [("x-pad", "p" * 40 * KIB)])
    with connect(edge[0]) as sock:
        send_all(sock, one * 3 + big)
        assert [read_response(sock)[0] for _ in range(4)] == [200, 200, 200, 431]


def test_a_head_refused_while_an_answer_is_due_waits_for_that_answer(
    edge: tuple[str, Recorder],
) -> None:
    """A head that passes the limit before it is whole, sent while the request before it is
    still at the upstream: that request is answered, then the 431 comes, then the close."""
    url, _ = edge
    with connect(url) as sock:
        send_all(sock, head("GET", "/api/rec/slow"))
        time.sleep(0.1)  # read alone: its request is at the upstream now
        send_all(sock, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Endless: ")
        for _ in range(40):
            send_all(sock, b"e" * KIB)
            time.sleep(0.002)
        assert read_response(sock)[0] == 200
        assert read_response(sock)[0] == 431
        assert closed_by_peer(sock, WAIT) is not None


def test_head_limits_follow_the_config() -> None:
    with edge_gateway(max_header_size="4KiB", max_header_count=10) as (url, _):
        assert exchange(url, head("GET", "/healthz", [("x-a", "a" * 3000)]))[0] == 200
        assert exchange(url, head("GET", "/healthz", [("x-a", "a" * 5000)]))[0] == 431
        nine = [(f"x-{i}", "1") for i in range(9)]  # and Host: 10
        assert exchange(url, head("GET", "/healthz", nine))[0] == 200
        assert exchange(url, head("GET", "/healthz", [*nine, ("x-9", "1")]))[0] == 431


def test_keep_alive_requests_are_each_measured_alone(edge: tuple[str, Recorder]) -> None:
    """The limit is per head: many requests on one connection add nothing up, and a head
    past it is refused wherever it comes."""
    url, _ = edge
    with connect(url) as sock:
        for _ in range(4):
            send_all(sock, head("GET", "/healthz", [("x-pad", "p" * 20 * KIB)]))
            assert read_response(sock)[0] == 200
        send_all(sock, head("GET", "/healthz", [("x-pad", "p" * 40 * KIB)]))
        assert read_response(sock)[0] == 431


# Timeouts


def test_a_silent_connection_is_closed_after_the_header_timeout(
    edge: tuple[str, Recorder],
) -> None:
    with connect(edge[0]) as sock:
        assert closed_by_peer(sock, WAIT) is not None


@pytest.mark.parametrize(
    "partial",
    [b"G", b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-A: 1"],
)
def test_a_partial_head_is_closed_after_the_header_timeout(
    edge: tuple[str, Recorder], partial: bytes
) -> None:
    with connect(edge[0]) as sock:
        send_all(sock, partial)
        assert closed_by_peer(sock, WAIT) is not None


def test_a_head_dripped_a_byte_at_a_time_is_still_bounded(edge: tuple[str, Recorder]) -> None:
    """The header timeout bounds the whole head, however steadily it trickles in."""
    request = head("GET", "/healthz", [("x-slow", "s" * 100)])
    with connect(edge[0]) as sock:
        started = time.monotonic()
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.02)
                if time.monotonic() - started > WAIT:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert time.monotonic() - started < 3 * SHORT + 1  # closed long before the whole head
        assert closed_by_peer(sock, WAIT) is not None


def graphql_post(length: int) -> bytes:
    fields = [("content-type", "application/json"), ("content-length", str(length))]
    return head("POST", "/graphql", fields)


BODY = b'{"query": "{ __typename }"}'


def test_a_stalled_body_is_closed_after_the_body_timeout(edge: tuple[str, Recorder]) -> None:
    with connect(edge[0]) as sock:
        send_all(sock, graphql_post(len(BODY)) + BODY[:10])
        waited = closed_by_peer(sock, WAIT)
        assert waited is not None and SHORT * 0.9 <= waited < SHORT + 1


def test_the_body_timeout_is_time_without_progress(edge: tuple[str, Recorder]) -> None:
    """A body that takes four timeouts to arrive, a piece every half timeout, is answered;
    the same body stopping half-way is closed one timeout after its last piece."""
    padded = BODY[:-1] + b" " * 11 + b"}"
    with connect(edge[0]) as sock:
        send_all(sock, graphql_post(len(padded)))
        started = time.monotonic()
        for i in range(0, len(padded), 2):
            time.sleep(SHORT / 2)
            send_all(sock, padded[i : i + 2])
        assert time.monotonic() - started > 3 * SHORT
        status, _, body = read_response(sock)
        assert status == 200 and orjson.loads(body)["data"] == {"__typename": "Query"}
    with connect(edge[0]) as sock:
        send_all(sock, graphql_post(len(padded)))
        for i in range(0, len(padded) // 2, 2):
            time.sleep(SHORT / 2)
            send_all(sock, padded[i : i + 2])
        waited = closed_by_peer(sock, WAIT)
        assert waited is not None and SHORT * 0.9 <= waited < SHORT + 1


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    edge: tuple[str, Recorder],
) -> None:
    """Requests each within the idle timeout of the last are all served; then the
    connection is closed one idle timeout after the last answer."""
    with connect(edge[0]) as sock:
        for _ in range(5):
            send_all(sock, head("GET", "/healthz"))
            assert read_response(sock)[0] == 200
            time.sleep(SHORT / 2)
        waited = closed_by_peer(sock, WAIT)
        assert waited is not None and waited < SHORT + 1


# A client that goes away


def test_an_abandoned_body_is_logged_once_and_not_as_a_500(
    edge: tuple[str, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with connect(edge[0]) as sock:
        send_all(sock, graphql_post(1000) + b'{"query": ')
        time.sleep(0.05)
    deadline = time.monotonic() + WAIT
    gone: list[logging.LogRecord] = []
    access: list[dict[str, object]] = []
    while time.monotonic() < deadline and not (gone and access):
        gone = [r for r in caplog.records if "client went away" in r.getMessage()]
        access = [
            line
            for r in caplog.records
            if r.name == "bff.access"
            and (line := orjson.loads(r.getMessage()))["path"] == "/graphql"
            and line["method"] == "POST"
        ]
        time.sleep(0.02)
    assert len(gone) == 1 and gone[0].exc_info is None
    assert [(line["status"], line["error_codes"]) for line in access] == [(499, [])]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_abandoned_passthrough_body_is_logged_as_such(
    edge: tuple[str, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fields = [("content-length", "100000")]
    with connect(edge[0]) as sock:
        send_all(sock, head("POST", "/api/rec/upload", fields) + b"x" * 1000)
        time.sleep(0.2)
    deadline = time.monotonic() + WAIT
    statuses: list[object] = []
    while time.monotonic() < deadline and not statuses:
        statuses = [
            orjson.loads(r.getMessage())["status"]
            for r in caplog.records
            if r.name == "bff.access" and "/api/rec/upload" in r.getMessage()
        ]
        time.sleep(0.02)
    assert statuses == [499]
    assert any("client went away" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# The connection cap


def test_connections_beyond_the_cap_get_503_but_healthz_answers() -> None:
    with edge_gateway(max_connections=2, header_timeout=WAIT) as (url, recorder):
        held = [connect(url), connect(url)]
        try:
            send_all(held[0], head("GET", "/healthz"))
            assert read_response(held[0])[0] == 200  # both accepted by now, in order
            with connect(url) as extra:
                send_all(extra, head("GET", "/api/rec/items"))
                status, fields, body = read_response(extra)
                assert status == 503 and ("retry-after", "1") in fields
                assert orjson.loads(body)["errors"][0]["extensions"]["code"] == (
                    "UPSTREAM_UNAVAILABLE"
                )
                assert closed_by_peer(extra, WAIT) is not None
            assert recorder.seen == []
            with connect(url) as probe:
                send_all(probe, head("GET", "/healthz"))
                status, fields, _ = read_response(probe)
                assert status == 200 and ("connection", "close") in fields
            for sock in held:  # within the cap, connections serve as ever
                send_all(sock, head("GET", "/api/rec/items"))
                assert read_response(sock)[0] == 200
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + WAIT
        while True:  # once they are gone, new connections are served again
            status, _ = exchange(url, head("GET", "/api/rec/items"))
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200


# Config


@pytest.mark.parametrize(
    ("server", "where"),
    [
        ({"max_header_size": "100B"}, "server.max_header_size"),
        ({"max_header_count": 0}, "server.max_header_count"),
        ({"header_timeout": "0s"}, "server.header_timeout"),
        ({"body_timeout": "soon"}, "server.body_timeout"),
        ({"idle_timeout": -1}, "server.idle_timeout"),
        ({"max_connections": 0}, "server.max_connections"),
    ],
)
def test_bad_edge_settings_name_their_key(server: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_dict({"server": server})
    assert where in str(raised.value) and "unknown" not in str(raised.value)


def test_edge_limits_are_read_from_the_app_s_settings() -> None:
    settings = settings_from_dict(
        {"server": {"max_header_size": "8KiB", "idle_timeout": "250ms", "max_connections": 7}}
    )

    class State:
        pass

    class App:
        state = State()

    App.state.settings = settings  # type: ignore[attr-defined]
    limits = EdgeLimits.for_app(App())
    assert (limits.max_header_size, limits.idle_timeout, limits.max_connections) == (
        8 * KIB,
        0.25,
        7,
    )
    assert EdgeLimits.for_app(object()) == EdgeLimits()


def test_every_way_of_serving_applies_the_app_s_limits() -> None:
    """`server_for` (bff serve, its workers, bff demo, BackgroundServer) speaks EdgeProtocol
    with the limits of the app's own settings; uvicorn's multiprocess mode is told to."""
    import inspect

    from bff import cli
    from bff.app import create_app
    from bff.serving import EdgeProtocol, server_for
    from bff.serving.edge import limits_of
    from tests.edge_wire import edge_settings

    settings = edge_settings(
        "http://127.0.0.1:9", max_header_count=12, header_timeout="1s", idle_timeout="2s"
    )
    server = server_for(create_app(settings))
    assert server.config.http is EdgeProtocol
    server.config.load()
    limits = limits_of(server.config)
    assert (limits.max_header_count, limits.header_timeout, limits.idle_timeout) == (12, 1, 2)
    assert '"bff.serving.edge:EdgeProtocol"' in inspect.getsource(cli.run_uvicorn_workers)
