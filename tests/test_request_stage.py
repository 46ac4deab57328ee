"""The request stage: one request id per request, shared by routes, logs and the response."""

from __future__ import annotations

import pytest

from bff.http.state import new_request_id
from tests.support import GraphQLClient


def test_fresh_id_is_echoed(gql: GraphQLClient) -> None:
    first = gql.post("{ product(id: 1) { id } }")
    second = gql.post("{ product(id: 1) { id } }")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_sane_incoming_id_is_kept(gql: GraphQLClient) -> None:
    response = gql.post("{ product(id: 1) { id } }", headers={"X-Request-Id": "abc-123.x:1"})
    assert response.headers["x-request-id"] == "abc-123.x:1"


@pytest.mark.parametrize("incoming", ["", "a" * 129, "a b", "a\tb", "é", "a;b"])
def test_insane_incoming_id_is_replaced(incoming: str) -> None:
    made = new_request_id(incoming)
    assert made != incoming
    assert len(made) == 32


def test_state_is_made_once_per_scope() -> None:
    """Apps mounted without the request stage still get one state per request."""
    from bff.http.state import RequestState, request_state

    scope: dict[str, object] = {}
    state = request_state(scope)
    assert isinstance(state, RequestState)
    assert request_state(scope) is state
