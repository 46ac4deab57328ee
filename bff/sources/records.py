"""Records: a source's answers decoded straight into msgspec Structs, typed by its schemas.

Each generated object type has a record class: a frozen `msgspec.Struct`, untracked by the
cyclic collector (decoded JSON holds no cycles), with one attribute per property, renamed to
its JSON name. Each operation's answer has a decoder for its type, so an answer becomes
records in one pass in C, properties no schema names are skipped, and fields are read by
attribute (`operator.attrgetter`) rather than looked up in a dict per object: 2/3 of the CPU of
`orjson` into dicts for the Dashboard's answers (`python -m bench.records`), and the OpenAPI
Dashboard's instructions per request down 14 % (`python -m bench.instructions`).

Only the structure is typed, and GraphQL stays the judge of values: a scalar is decoded as
JSON has it (a string where the schema says integer stays a string, for its field to report),
and every attribute is optional and nullable (a missing or null required property is the
field's error). An answer whose structure differs (a list where an object is due) fails the
typed decoder; it is then read as plain JSON and built into the same records (`build`), each
value of the wrong structure an error in its place (the upstream's unreadable answer there),
so the rest of the answer stands. An answer that reaches a union is always built that way: a
msgspec union of Structs needs a tag in every member, while a union here picks its member by
its own rule.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

import msgspec
import orjson
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLUnionType

from bff.errors import BadUpstreamResponse

Record = msgspec.Struct
TOO_DEEP = "the answer is nested too deeply to read"
Pick = Callable[[Mapping[str, Any]], str]  # a union's member for a JSON object, by name


def attribute_names(properties: list[str]) -> dict[str, str]:
    """property -> attribute: the property itself when Python allows it, else a made-up one."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for index, prop in enumerate(properties):
        usable = prop.isidentifier() and not keyword.iskeyword(prop) and not prop.startswith("_")
        name = prop if usable and prop not in taken else f"p{index}_"
        while name in taken:
            name += "_"
        taken.add(name)
        names[prop] = name
    return names


def record_class(name: str, attributes: Mapping[str, str]) -> type[Record]:
    """A record with an attribute per property (`attributes`: property -> attribute), each
    typed `Any` until `type_attributes` says more."""
    return msgspec.defstruct(
        name,
        [(attr, Any, None) for attr in attributes.values()],
        kw_only=True,
        frozen=True,
        gc=False,
        rename={attr: prop for prop, attr in attributes.items() if attr != prop} or None,
    )


def type_attributes(record: type[Record], types: Mapping[str, Any]) -> None:
    """Give the record's attributes (`types`: attribute -> decoded type) their types.

    Records are made before their attributes are typed so that a schema may name itself
    (a category's `children`); msgspec reads the annotations when a decoder is first made."""
    annotations = record.__annotations__
    for attr, decoded in types.items():
        annotations[attr] = decoded if decoded is Any else decoded | None


class Records:
    """The record class of every generated object type, and how to decode and build them."""

    def __init__(self) -> None:
        self.classes: dict[str, type[Record]] = {}  # object type name -> its record class
        self.attributes: dict[str, dict[str, str]] = {}  # type name -> property -> attribute
        self.outputs: dict[str, dict[str, Any]] = {}  # type name -> property -> GraphQL type
        self.picks: dict[str, Pick] = {}  # union name -> its rule

    def add(self, type_name: str, properties: list[str]) -> None:
        attributes = attribute_names(properties)
        self.attributes[type_name] = attributes
        self.outputs[type_name] = {}
        self.classes[type_name] = record_class(type_name, attributes)

    def set_output(self, type_name: str, prop: str, output: Any) -> None:
        """The GraphQL type answering `prop` of `type_name`, which also types its record."""
        self.outputs[type_name][prop] = output
        attr = self.attributes[type_name][prop]
        type_attributes(self.classes[type_name], {attr: self.decoded(output)})

    def decoded(self, output: Any) -> Any:
        """The msgspec type decoding a value of GraphQL type `output`: records and lists of
        them typed, anything else as JSON has it."""
        if isinstance(output, GraphQLNonNull):
            output = output.of_type
        if isinstance(output, GraphQLList):  # a null item is its own error too
            return list[self.decoded(output.of_type) | None]  # type: ignore[misc]
        if isinstance(output, GraphQLObjectType):
            return self.classes[output.name]
        return Any

    def reaches_union(self, output: Any, seen: set[str] | None = None) -> bool:
        seen = set() if seen is None else seen
        while isinstance(output, GraphQLNonNull | GraphQLList):
            output = output.of_type
        if isinstance(output, GraphQLUnionType):
            return True
        if not isinstance(output, GraphQLObjectType) or output.name in seen:
            return False
        seen.add(output.name)
        props = self.outputs.get(output.name, {})
        return any(self.reaches_union(inner, seen) for inner in props.values())

    def decoder(self, output: Any, upstream: str) -> Callable[[bytes | bytearray], Any]:
        """Decodes an answer of GraphQL type `output` from `upstream` (`ValueError` if it is
        not JSON, or nested deeper than Python's recursion limit lets either decoder read)."""
        if self.reaches_union(output):

            def built(body: bytes | bytearray) -> Any:
                try:
                    return self.build(orjson.loads(body), output, upstream)
                except RecursionError as error:
                    raise ValueError(TOO_DEEP) from error

            return built
        typed = msgspec.json.Decoder(self.decoded(output) | None)

        def decode(body: bytes | bytearray) -> Any:
            try:
                try:
                    return typed.decode(body)
                except msgspec.ValidationError:  # another structure: built in Python
                    return self.build(orjson.loads(body), output, upstream)
            except RecursionError as error:
                raise ValueError(TOO_DEEP) from error

        return decode

    def link_decoder(
        self, target: Any, result: str | None, upstream: str
    ) -> Callable[[bytes | bytearray], Any]:
        """Decodes a link's answer to its value at property `result` (the whole answer when
        `None`), of GraphQL type `target`; `ValueError` as `decoder`, or if the answer is not
        an object when it should hold `result`."""
        if result is None:
            return self.decoder(target, upstream)

        def built(body: bytes | bytearray) -> Any:
            value = orjson.loads(body)
            if not isinstance(value, dict):
                raise ValueError("the answer is not an object")
            try:
                return self.build(value.get(result), target, upstream)
            except RecursionError as error:
                raise ValueError(TOO_DEEP) from error

        if self.reaches_union(target):
            return built
        attr = attribute_names([result])[result]
        answer = record_class("LinkAnswer", {result: attr})
        type_attributes(answer, {attr: self.decoded(target)})
        typed, read = msgspec.json.Decoder(answer), attrgetter(attr)

        def decode(body: bytes | bytearray) -> Any:
            try:
                return read(typed.decode(body))
            except msgspec.ValidationError:
                return built(body)
            except RecursionError as error:
                raise ValueError(TOO_DEEP) from error

        return decode

    def build(self, value: Any, output: Any, upstream: str) -> Any:
        """Plain JSON `value` as records of type `output`. A scalar is kept as it is, for its
        field to judge; a value of another structure (no object where an object is due, no
        list where a list is) is `upstream`'s unreadable answer there, an error in its place
        that both executors report at that position (`BadUpstreamResponse`)."""
        if isinstance(output, GraphQLNonNull):
            output = output.of_type
        if value is None:
            return None
        if isinstance(output, GraphQLList):
            if not isinstance(value, list):
                return BadUpstreamResponse(upstream)
            return [self.build(item, output.of_type, upstream) for item in value]
        if isinstance(output, GraphQLUnionType):
            if not isinstance(value, dict):
                return BadUpstreamResponse(upstream)
            return self.build(value, self.member(output, value), upstream)
        if isinstance(output, GraphQLObjectType):
            if not isinstance(value, dict):
                return BadUpstreamResponse(upstream)
            name = output.name
            attributes, outputs = self.attributes[name], self.outputs[name]
            return self.classes[name](
                **{
                    attr: self.build(value.get(prop), outputs.get(prop), upstream)
                    for prop, attr in attributes.items()
                }
            )
        return value

    def member(self, union: GraphQLUnionType, value: Mapping[str, Any]) -> GraphQLObjectType:
        name = self.picks[union.name](value)
        members: list[GraphQLObjectType] = [t for t in union.types if t.name == name]
        return members[0]
