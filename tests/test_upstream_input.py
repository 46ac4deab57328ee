"""Hostile input (issue 13): nothing a caller writes may split the request or reframe it.

Each scenario runs on asyncio's loop and on uvloop against `tests.hostile.Hostile`, a
loopback server that misbehaves as scripted; tests check the outcome, whether the connection
was reused (the server's accepted-connection count) and that nothing reached the event loop's
exception handler.
"""

from __future__ import annotations

import pytest

from bff.errors import BadUserInput
from bff.upstream.request import InvalidRequest, build_request
from tests.hostile import (
    LOOPS,
    Hostile,
    Run,
    loop_runner,
    pool_of,
    response,
    serve_each,
)

run = pytest.fixture(params=LOOPS)(loop_runner)


# --- hostile input: nothing the caller writes may split the request ------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", {}),
        ("GET\r\n", {}),
        ("G T", {}),
        ("GET", {"Content-Length ": "5"}),
        ("GET", {"Transfer-Encoding\t": "chunked"}),
        ("GET", {"X-A: 1\r\nX-Admin": "yes"}),
        ("GET", {"X-User-Id: 7\r\nX": "y"}),
        ("GET", {"X-Spoof: 1": "2"}),
        ("GET", {"": "empty name"}),
        ("GET", {"X-A": "1\r\nX-Admin: yes"}),
        ("GET", {"X-A": "1\nGET / HTTP/1.1"}),
        ("GET", {"X-A": "nul\0byte"}),
    ],
)
def test_input_that_could_split_the_request_is_bad_user_input(
    run: Run, method: str, headers: dict[str, str]
) -> None:
    async def scenario() -> Hostile:
        async with Hostile(serve_each(response())) as server:
            pool = pool_of(server)
            try:
                with pytest.raises(BadUserInput) as caught:
                    await pool.request(method, "/", headers=headers)
                assert caught.value.status == 400 and caught.value.code == "BAD_USER_INPUT"
                assert "\r" not in caught.value.message and "yes" not in caught.value.message
            finally:
                await pool.aclose()
        return server

    assert run(scenario()).received == []  # nothing reached the upstream


def test_hop_by_hop_and_framing_fields_of_the_caller_are_dropped(run: Run) -> None:
    headers = {
        "Connection": "X-Secret, close",
        "X-Secret": "hop",
        "Keep-Alive": "timeout=1",
        "TE": "trailers",
        "Trailer": "X-B",
        "Upgrade": "websocket",
        "Proxy-Authorization": "Basic x",
        "transfer-encoding": "chunked",
        "CONTENT-LENGTH": "9",
        "host": "evil",
        "X-Kept": "yes",
    }

    async def scenario() -> dict[str, str]:
        async with Hostile(serve_each(response())) as server:
            pool = pool_of(server)
            try:
                await pool.request("POST", "/", headers=headers)
            finally:
                await pool.aclose()
        return server.received[0].headers

    seen = run(scenario())
    assert seen["x-kept"] == "yes"
    assert seen["content-length"] == "0" and seen["host"] != "evil"
    dropped = {"connection", "x-secret", "keep-alive", "te", "trailer", "upgrade"}
    assert not dropped & seen.keys()
    assert "proxy-authorization" not in seen and "transfer-encoding" not in seen


def test_with_header_refuses_what_could_split_or_reframe() -> None:
    request = build_request("GET", "/")
    for name, value in [("X", "a\r\nB: 2"), ("X\n", "1"), ("a:b", "1"), ("x", "\0")]:
        with pytest.raises(InvalidRequest):
            request.with_header(name, value)
    with pytest.raises(InvalidRequest):
        request.with_header("Content-Length", "1")
    assert request.with_header("X-Request-Id", "r1").request_id == b"r1"


@pytest.mark.parametrize(
    "path",
    ["/users/1/../../admin", "/users/%2e%2e/admin", "/users/1%2Fadmin", "//evil/x", "/a\\b"],
)
def test_typed_client_paths_pass_the_path_policy(run: Run, path: str) -> None:
    """A path a typed client builds from input (an id) cannot leave its resource either."""

    async def scenario() -> Hostile:
        async with Hostile(serve_each(response())) as server:
            pool = pool_of(server)
            try:
                with pytest.raises(BadUserInput):
                    await pool.request("GET", path)
                await pool.request("GET", "/users/%7E1/.well-known")  # canonical-able: sent
            finally:
                await pool.aclose()
        return server

    assert [r.target for r in run(scenario()).received] == ["/users/~1/.well-known"]
