"""A cached body's records decoded once, and only when no caller could change them."""

from __future__ import annotations

import msgspec
import pytest

from bff.upstream import kept_decodes
from bff.upstream.kept_decodes import decode_kept, immutable


class Line(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class Basket(msgspec.Struct, frozen=True):
    lines: tuple[Line, ...]
    note: str | None = None


class Loose(msgspec.Struct):
    lines: tuple[Line, ...]


class Tree(msgspec.Struct, frozen=True):
    children: tuple[Tree, ...] = ()


BODY = b'{"lines": [{"sku": "a", "quantity": 2}], "note": null}'


def test_only_types_frozen_all_the_way_down_are_immutable() -> None:
    assert [immutable(t) for t in (Basket, Line, tuple[Line, ...], Tree, int | None)] == [True] * 5
    assert [immutable(t) for t in (Loose, list[Line], dict[str, int], tuple[list[int]])] == [
        False
    ] * 4


def test_a_kept_body_is_decoded_once_for_a_frozen_type_and_every_time_otherwise() -> None:
    frozen, loose = msgspec.json.Decoder(Basket), msgspec.json.Decoder(Loose)
    body, same_text = BODY, bytes(bytearray(BODY))  # equal bodies, two objects
    first, again = decode_kept(frozen, body), decode_kept(frozen, body)
    other_body = decode_kept(frozen, same_text)
    assert first is again and first == other_body and first is not other_body
    assert decode_kept(loose, body) is not decode_kept(loose, body)


def test_the_kept_values_are_bounded_by_the_bytes_of_their_bodies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kept_decodes, "MAX_BYTES", len(BODY) * 2)
    decoder = msgspec.json.Decoder(Basket)
    bodies = [bytes(bytearray(BODY)) for _ in range(3)]
    firsts = [decode_kept(decoder, body) for body in bodies]
    assert decode_kept(decoder, bodies[2]) is firsts[2]  # kept
    assert decode_kept(decoder, bodies[0]) is not firsts[0]  # the least recent: let go
    assert kept_decodes._size <= len(BODY) * 2
