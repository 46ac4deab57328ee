"""Records (`bff.sources.records`): answers decoded into typed records, and answers of another
shape built into the same records unchecked, so each odd value is its own field's error."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from graphql import GraphQLList, GraphQLObjectType

from bff.errors import BadUpstreamResponse
from bff.sources.document import Document
from bff.sources.records import Records, attribute_names
from bff.sources.types import Registry, Types

SCHEMAS: dict[str, Any] = {
    "Category": {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "weight": {"type": "number"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Category"}},
            "kind": {"type": "string", "enum": ["leaf", "branch"]},
            "extra": {"type": "object"},  # free-form: JSON
            "class": {"type": "boolean"},  # not a Python name
            "created-at": {"type": "string"},
        },
    },
    "Shape": {
        "oneOf": [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}]
    },
    "Circle": {"type": "object", "required": ["r"], "properties": {"r": {"type": "number"}}},
    "Square": {"type": "object", "required": ["side"], "properties": {"side": {"type": "number"}}},
    "Drawing": {
        "type": "object",
        "properties": {
            "shapes": {"type": "array", "items": {"$ref": "#/components/schemas/Shape"}}
        },
    },
}


def made(name: str) -> tuple[Records, Any]:
    document = Document({"openapi": "3.1.0", "components": {"schemas": SCHEMAS}})
    registry = Registry()
    types = Types(document, "test", "", registry)
    output = types.output({"$ref": f"#/components/schemas/{name}"}, ("answer",), "Answer")
    return registry.records, output


def test_an_answer_is_decoded_into_records_read_by_attribute() -> None:
    records, output = made("Category")
    body = {
        "id": 1,
        "name": "root",
        "weight": 2,
        "class": True,
        "created-at": "today",
        "kind": "branch",
        "extra": {"a": [1]},
        "unknown": {"skipped": True},
        "children": [{"id": 2, "name": "leaf", "children": []}],
    }
    value = records.decoder(output, "test")(orjson.dumps(body))
    names = records.attributes["Category"]
    assert type(value) is records.classes["Category"]
    assert value.id == 1 and value.name == "root" and value.kind == "branch"
    assert value.weight == 2 and type(value.weight) is int  # as JSON has it: GraphQL judges
    assert getattr(value, names["class"]) is True
    assert getattr(value, names["created-at"]) == "today"
    assert value.extra == {"a": [1]}
    assert not hasattr(value, "unknown")
    (child,) = value.children
    assert type(child) is records.classes["Category"]  # a schema naming itself
    assert (child.id, child.name, child.children, child.weight) == (2, "leaf", [], None)


def test_an_answer_of_another_shape_keeps_each_odd_value_for_its_field() -> None:
    """Scalars stay as JSON has them; a value of another structure is the upstream's error
    in its place, and the rest of the answer stands."""
    records, output = made("Category")
    body = {"id": "one", "name": 5, "children": [{"id": 2}, "not a category", None], "class": 1}
    value = records.decoder(output, "test")(orjson.dumps(body))
    assert type(value) is records.classes["Category"]
    assert (value.id, value.name, getattr(value, records.attributes["Category"]["class"])) == (
        "one",
        5,
        1,
    )
    first, odd, missing = value.children
    assert type(first) is records.classes["Category"] and first.id == 2
    assert missing is None
    assert isinstance(odd, BadUpstreamResponse)
    assert odd.extensions == {"code": "UPSTREAM_UNAVAILABLE", "upstream": "test"}
    assert "not a category" not in str(odd)  # the body is never shown
    listless = records.decoder(output, "test")(orjson.dumps({"id": 1, "children": "none"}))
    assert isinstance(listless.children, BadUpstreamResponse)


def test_odd_scalars_are_decoded_in_c_as_json_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    records, output = made("Category")
    monkeypatch.setattr(Records, "build", lambda *_: pytest.fail("built in Python"))
    body = {"id": "one", "weight": "heavy", "kind": 3, "class": "yes", "children": [{"id": []}]}
    value = records.decoder(output, "test")(orjson.dumps(body))
    assert (value.id, value.weight, value.kind) == ("one", "heavy", 3)
    assert value.children[0].id == []


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"3"])
def test_an_answer_that_is_no_object_is_the_upstreams_error(body: bytes) -> None:
    records, output = made("Category")
    assert isinstance(records.decoder(output, "test")(body), BadUpstreamResponse)


def test_a_body_that_is_not_json_is_a_value_error() -> None:
    records, output = made("Category")
    with pytest.raises(ValueError):
        records.decoder(output, "test")(b'{"id": ')


def test_union_members_are_built_into_their_own_records() -> None:
    records, output = made("Drawing")
    body = {"shapes": [{"r": 1}, {"side": 2}, "odd", None]}
    value = records.decoder(output, "test")(orjson.dumps(body))
    circle, square, odd, missing = value.shapes
    assert type(circle) is records.classes["Circle"] and circle.r == 1
    assert type(square) is records.classes["Square"] and square.side == 2
    assert missing is None and isinstance(odd, BadUpstreamResponse)
    union = records.outputs["Drawing"]["shapes"].of_type.of_type
    assert union.resolve_type(square, None, union) == "Square"
    assert union.resolve_type({"side": 2}, None, union) is None  # only records reach it


def test_a_link_answer_is_its_value_at_result() -> None:
    records, output = made("Category")
    assert isinstance(output, GraphQLObjectType)
    decode = records.link_decoder(GraphQLList(output), "items", "test")
    (item,) = decode(b'{"items": [{"id": 7}], "next": null}')
    assert item.id == 7
    (item,) = decode(b'{"items": [{"id": "seven"}]}')  # another shape: built unchecked
    assert item.id == "seven"
    assert decode(b'{"next": 1}') is None
    with pytest.raises(ValueError):
        decode(b"[]")  # no object holds `items`


def test_attribute_names_are_python_names_and_unique() -> None:
    names = attribute_names(["id", "class", "created-at", "_x", "p2_", "get", "2nd"])
    assert names["id"] == "id" and names["get"] == "get"
    assert all(name.isidentifier() for name in names.values())
    assert len(set(names.values())) == len(names)


@pytest.mark.parametrize("depth", [100, 5000])
@pytest.mark.parametrize("leaf", [b'{"id": 1}', b'"odd"'])
def test_an_answer_nested_past_what_python_reads_is_a_value_error(depth: int, leaf: bytes) -> None:
    records, output = made("Category")
    body = b'{"id": 1, "children": [' * depth + leaf + b"]}" * depth
    if depth == 100:  # read, typed or built
        assert type(records.decoder(output, "test")(body)) is records.classes["Category"]
        return
    with pytest.raises(ValueError, match="nested too deeply"):
        records.decoder(output, "test")(body)
    link = records.link_decoder(GraphQLList(output), "items", "test")
    with pytest.raises(ValueError, match="nested too deeply"):
        link(b'{"items": [' + body + b"]}")
