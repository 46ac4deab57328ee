"""The rate limiter's own Redis connection: RESP parsing, pipelining, handshake, failures."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from urllib.parse import urlparse

import pytest
from redis.asyncio import Redis

from bff.limits.resp import RespClient, RespError, RespUnavailable, pack, parse

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def test_replies_parse_whole_or_not_at_all() -> None:
    reply = b"*3\r\n:1\r\n$3\r\nabc\r\n*2\r\n:-5\r\n$-1\r\n+OK\r\n"
    value, end = parse(reply, 0) or (None, 0)
    assert value == [1, b"abc", [-5, None]]
    assert parse(reply, end) == (b"OK", len(reply))
    for cut in range(1, end):  # every prefix of the array is incomplete, never wrong
        assert parse(reply[:cut], 0) is None
    error, _ = parse(b"-NOSCRIPT No matching script\r\n", 0) or (None, 0)
    assert isinstance(error, RespError) and str(error).startswith("NOSCRIPT")


def test_commands_pack_as_resp_arrays() -> None:
    assert pack(("GET", "k", 12)) == b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_pipelined_calls_answer_in_order_in_the_urls_database() -> None:
    parts = urlparse(REDIS_URL)
    url = f"redis://{parts.netloc}/3"
    key = f"bff-test:resp:{uuid.uuid4().hex}"

    async def scenario() -> tuple[list[object], object, object]:
        client = RespClient(url)
        try:
            replies = await asyncio.gather(
                client.call("SET", key, "v"), client.call("GET", key), client.call("DEL", key)
            )
            with pytest.raises(RespError):
                await client.call("NOSUCHCOMMAND")
            redis = Redis.from_url(url)
            await client.call("SET", key, "db3")
            in_db3 = await redis.get(key)
            await redis.delete(key)
            await redis.aclose()
            other = RespClient(REDIS_URL)
            in_db0 = await other.call("GET", key)
            await other.aclose()
        finally:
            await client.aclose()
        return replies, in_db3, in_db0

    replies, in_db3, in_db0 = asyncio.run(scenario())
    assert replies == [b"OK", b"v", 1]
    assert in_db3 == b"db3"  # SELECT 3 from the URL was sent first
    assert in_db0 is None


def test_an_unreachable_server_fails_the_call_instead_of_hanging() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there

    async def scenario() -> None:
        client = RespClient(f"redis://127.0.0.1:{port}/0", timeout=0.5)
        with pytest.raises(RespUnavailable):
            await asyncio.wait_for(client.call("PING"), 5)
        await client.aclose()

    asyncio.run(scenario())


def test_a_server_that_never_answers_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection (backlog), never reads or answers

    async def scenario() -> None:
        client = RespClient(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.3)
        with pytest.raises(RespUnavailable):
            await asyncio.wait_for(client.call("PING"), 5)
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        silent.close()
