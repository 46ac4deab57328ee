"""Access requirements and argument parsing are pure decisions: tested without any server."""

from __future__ import annotations

import pytest

from bff.auth import ANONYMOUS, Authenticated, OwnerOr, Principal, Public, Scopes, bearer_token
from bff.errors import BadUserInput, Forbidden, Unauthenticated
from resolvers.arguments import encode_cursor, offset_after, page_size, parse_id

ALICE = Principal(sub="7", scopes=frozenset({"orders:read"}))
BOB = Principal(sub="8")
SERVICE = Principal(sub="svc-reporting", scopes=frozenset({"orders:read", "admin"}))


def test_public_admits_everyone() -> None:
    Public().check(ANONYMOUS)
    Public().check(BOB)


def test_authenticated_refuses_anonymous() -> None:
    with pytest.raises(Unauthenticated):
        Authenticated().check(ANONYMOUS)
    Authenticated().check(BOB)


def test_scopes_need_every_scope() -> None:
    Scopes("orders:read").check(ALICE)
    with pytest.raises(Forbidden, match="orders:read"):
        Scopes("orders:read").check(BOB)
    with pytest.raises(Forbidden, match="admin"):
        Scopes("orders:read", "admin").check(ALICE)
    with pytest.raises(Unauthenticated):
        Scopes("orders:read").check(ANONYMOUS)


def test_owner_or_scope() -> None:
    rule = OwnerOr("users:read:email")
    rule.check(BOB, owner=8)
    with pytest.raises(Forbidden):
        rule.check(BOB, owner=7)
    with pytest.raises(Unauthenticated):
        rule.check(ANONYMOUS, owner=8)
    OwnerOr("orders:read").check(ALICE, owner=8)
    with pytest.raises(Forbidden):
        OwnerOr("orders:read").check(Principal(sub="svc"), owner=8)


def test_identity_headers() -> None:
    assert ANONYMOUS.identity_headers() == {}
    assert SERVICE.identity_headers() == {
        "X-User-Id": "svc-reporting",
        "X-User-Scopes": "admin orders:read",
    }
    assert SERVICE.user_id is None
    assert ALICE.user_id == 7


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  abc ", "abc")],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "abc"])
def test_malformed_authorization_is_refused(header: str) -> None:
    with pytest.raises(Unauthenticated):
        bearer_token(header)


@pytest.mark.parametrize("value", ["1", "42", " 7 "])
def test_parse_id_accepts_positive_integers(value: str) -> None:
    assert parse_id(value) == int(value)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.5", "9" * 30])
def test_parse_id_refuses_the_rest(value: str) -> None:
    with pytest.raises(BadUserInput):
        parse_id(value)


@pytest.mark.parametrize("offset", [0, 1, 19, 4999, 10**6])
def test_cursor_round_trip(offset: int) -> None:
    cursor = encode_cursor(offset)
    assert str(offset) not in cursor or offset < 10  # opaque, not the bare number
    assert offset_after(cursor) == offset + 1


@pytest.mark.parametrize("cursor", ["", "???", "bm9wZQ", encode_cursor(1)[:-1] + "!"])
def test_foreign_cursors_are_bad_input(cursor: str) -> None:
    with pytest.raises(BadUserInput):
        offset_after(cursor)


def test_page_size_bounds() -> None:
    assert page_size(None, 20) == 20
    assert page_size(0, 20) == 0
    assert page_size(1000, 20) == 1000
    for bad in (-1, 1001):
        with pytest.raises(BadUserInput):
            page_size(bad, 20)
