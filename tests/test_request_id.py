"""The request id in every log line written while serving a request, and in the masked-error log.

The gateway and the small apps here serve from a thread of this process, so `caplog` sees
their log records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import resolvers.objects
from bff.http.errors import ErrorsStage
from bff.http.request_stage import RequestStage
from bff.request_id import NO_REQUEST, current_request_id, install_log_records
from bff.serving import LOG_FORMAT, BackgroundServer
from tests.support import GraphQLClient

probe = logging.getLogger("tests.request_id.probe")


async def logs_then_answers(request: Request) -> PlainTextResponse:
    """Logs from the route and from a task it starts (as dataloaders do), then answers."""
    probe.warning("in the route")
    await asyncio.create_task(log_in_a_task())
    if request.query_params.get("fail"):
        raise RuntimeError("boom")
    return PlainTextResponse(current_request_id())


async def log_in_a_task() -> None:
    await asyncio.sleep(0)
    probe.warning("in a task")


@pytest.fixture(scope="module")
def staged() -> Iterator[httpx.Client]:
    """A route behind the real request and errors stages, served on loopback."""
    install_log_records()
    app = Starlette(
        routes=[Route("/probe", logs_then_answers)],
        middleware=[Middleware(RequestStage), Middleware(ErrorsStage)],
    )
    with (
        BackgroundServer(app) as server,
        httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client,
    ):
        yield client


def ids_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.request_id for r in caplog.records if r.name == logger]  # type: ignore[attr-defined]


def test_route_and_task_log_lines_carry_the_request_id(
    staged: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=probe.name):
        response = staged.get("/probe", headers={"X-Request-Id": "req-route-1"})
    assert response.text == "req-route-1"
    assert ids_of(caplog, probe.name) == ["req-route-1", "req-route-1"]


def test_concurrent_requests_keep_their_own_ids(
    staged: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"req-concurrent-{n}" for n in range(8)]
    with caplog.at_level(logging.WARNING, logger=probe.name), ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: staged.get("/probe", headers={"X-Request-Id": i}), ids))
    assert [a.text for a in answers] == ids
    logged = ids_of(caplog, probe.name)
    assert sorted(logged) == sorted(ids * 2)


def test_the_errors_stage_logs_a_masked_500_with_the_request_id(
    staged: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="bff.errors"):
        response = staged.get("/probe?fail=1", headers={"X-Request-Id": "req-fails-1"})
    assert response.status_code == 500
    assert "boom" not in response.text
    assert response.headers["x-request-id"] == "req-fails-1"
    (record,) = [r for r in caplog.records if r.name == "bff.errors"]
    assert record.request_id == "req-fails-1"  # type: ignore[attr-defined]
    assert "req-fails-1" in record.getMessage()


def test_the_masked_graphql_error_log_names_the_request(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_stock(*args: object) -> int | None:
        raise RuntimeError("secret detail 456")

    monkeypatch.setattr(resolvers.objects, "stock", broken_stock)
    with caplog.at_level(logging.ERROR, logger="bff.errors"):
        response = gql.post(
            "{ product(id: 3) { stock } }", headers={"X-Request-Id": "req-masked-1"}
        )
    assert response.json()["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "secret detail 456" not in response.text
    (record,) = [r for r in caplog.records if r.name == "bff.errors"]
    assert record.request_id == "req-masked-1"  # type: ignore[attr-defined]
    assert "req-masked-1" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "secret detail 456"


def test_outside_a_request_the_id_is_a_dash(caplog: pytest.LogCaptureFixture) -> None:
    install_log_records()
    install_log_records()  # idempotent: one wrapper, not two
    with caplog.at_level(logging.WARNING, logger=probe.name):
        probe.warning("at start-up")
    (record,) = caplog.records
    assert record.request_id == NO_REQUEST  # type: ignore[attr-defined]
    assert logging.Formatter(LOG_FORMAT).format(record) == (f"WARNING {probe.name} [-] at start-up")
    factory = logging.getLogRecordFactory()
    assert factory.__closure__ is not None
    wrapped = [c.cell_contents for c in factory.__closure__ if callable(c.cell_contents)]
    assert not any(getattr(w, "adds_request_id", False) for w in wrapped)
