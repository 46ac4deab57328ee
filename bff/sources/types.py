"""GraphQL types for the schemas of an OpenAPI document (SPEC section 12, "Types").

- A schema under `components/schemas` becomes a type of its name (with the source's `prefix`);
  a `$ref` chain names the type by the schema at its end, so an alias adds no type. An inline
  schema is named by its place: `<Type><Property>` for a property (an array's items included),
  `<OperationId>Response` for an answer, `<operationId>Input` for a request body.
- Input types take the name with `Input` appended, unless it already ends in `Input`.
- `integer` -> `Int` (`format: int64` -> `Int64` unless `minimum`/`maximum` keep it in 32
  bits), `number` -> `Float`, `string` -> `String`, `boolean` -> `Boolean`, `array` -> a list,
  `enum` -> a GraphQL enum, `allOf` merged; a free-form object, a schema with no type or
  several -> `JSON` (`bff.sources.scalars`); a `oneOf`/`anyOf` of objects is a union (its
  member picked by the `discriminator`, else the first whose required properties are all
  there), any other `oneOf`/`anyOf` is `JSON`.
- `required` -> non-null, unless the property is `nullable: true` (3.0) or has `"null"` among
  its types (3.1); array items are non-null unless they say the same.
- Names GraphQL forbids are made valid by `bff.sources.names`; a field keeps reading the
  property under its original name.

Every object type has a record class (`bff.sources.records`) its answers are decoded into;
its fields are `read_field`s reading the record's attributes, so the execution fast path reads
them natively, in C.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLNullableInputType,
    GraphQLNullableOutputType,
    GraphQLObjectType,
    GraphQLString,
    GraphQLUnionType,
    get_named_type,
    get_nullable_type,
)

from bff.graph.fields import read_field
from bff.limits.analysis import LIST_SIZE
from bff.sources.document import Document, DocumentError, Pointer, pointer_text
from bff.sources.names import NameSet, enum_value_name, graphql_name, type_name
from bff.sources.records import Records
from bff.sources.scalars import INT64, JSON

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SCHEMAS = ("components", "schemas")


@dataclass(eq=False)
class ObjectSpec:
    """A generated object type, and what links need to know of it."""

    name: str
    source: str
    where: Pointer
    properties: dict[str, Any]  # property -> its (flattened) schema
    type: GraphQLObjectType = field(init=False)
    fields: dict[str, GraphQLField] = field(default_factory=dict)
    names: NameSet = field(default_factory=NameSet)

    def __post_init__(self) -> None:
        self.type = GraphQLObjectType(self.name, lambda: self.fields)


@dataclass
class Registry:
    """The generated types of all sources, by GraphQL name, and who defined each."""

    objects: dict[str, ObjectSpec] = field(default_factory=dict)
    owners: dict[str, tuple[str, Pointer]] = field(default_factory=dict)
    enums: dict[tuple[str, Pointer], GraphQLEnumType] = field(default_factory=dict)
    inputs: dict[tuple[str, Pointer], GraphQLInputObjectType] = field(default_factory=dict)
    unions: dict[tuple[str, Pointer], GraphQLUnionType] = field(default_factory=dict)
    named: dict[tuple[str, Pointer], Any] = field(default_factory=dict)  # output types
    records: Records = field(default_factory=Records)
    problems: list[str] = field(default_factory=list)

    def claim(self, name: str, source: str, where: Pointer, component: bool) -> str:
        """`name` for the type at `where`; an inline one takes `name_2`, ... when taken."""
        owner = self.owners.get(name)
        if owner is None:
            self.owners[name] = (source, where)
            return name
        if component and owner[1][:2] == SCHEMAS and owner[0] != source:
            self.problems.append(
                f"sources.{source}: type {name} ({pointer_text(where)}) is defined by source "
                f"{owner[0]} too; give one of them a `prefix`"
            )
            return name
        n = 2
        while f"{name}_{n}" in self.owners:
            n += 1
        self.owners[f"{name}_{n}"] = (source, where)
        return f"{name}_{n}"


def component_name(where: Pointer) -> str | None:
    if len(where) == 3 and where[:2] == SCHEMAS:
        return str(where[2])
    return None


def is_nullable(schema: Mapping[str, Any]) -> bool:
    kinds = schema.get("type")
    return bool(schema.get("nullable")) or (isinstance(kinds, list) and "null" in kinds)


class Types:
    """Turns the schemas of one source's document into GraphQL types."""

    def __init__(self, document: Document, source: str, prefix: str, registry: Registry):
        self.document = document
        self.source = source
        self.prefix = prefix
        self.registry = registry
        self.merging: set[Pointer] = set()  # allOf being merged: one seen again is a cycle

    # -- reading schemas -------------------------------------------------------------------

    def flatten(self, node: Any, where: Pointer) -> tuple[dict[str, Any], Pointer]:
        """The schema at `node` with its `$ref`s followed and its `allOf` merged."""
        node, where = self.document.follow(node, where)
        if not isinstance(node, Mapping):
            raise DocumentError(where, "a schema must be a mapping")
        if "allOf" not in node:
            return dict(node), where
        if where in self.merging:
            raise DocumentError(where, "allOf includes the schema itself")
        self.merging.add(where)
        try:
            return self.merge_all_of(node, where), where
        finally:
            self.merging.discard(where)

    def merge_all_of(self, node: Mapping[str, Any], where: Pointer) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        properties: dict[str, Any] = {}
        required: list[str] = []
        members = node["allOf"]
        if not isinstance(members, list):
            raise DocumentError((*where, "allOf"), "allOf must be a list of schemas")
        for index, member in enumerate(members):
            part, _ = self.flatten(member, (*where, "allOf", index))
            properties.update(part.get("properties") or {})
            required.extend(part.get("required") or [])
            for key, value in part.items():
                if key not in ("properties", "required"):
                    merged.setdefault(key, value)
        properties.update(node.get("properties") or {})
        required.extend(node.get("required") or [])
        merged["properties"], merged["required"] = properties, required
        if properties:
            merged.setdefault("type", "object")
        return merged

    def kind(self, schema: Mapping[str, Any]) -> str:
        if "oneOf" in schema or "anyOf" in schema:
            return "json"
        kinds = schema.get("type")
        if isinstance(kinds, list):
            kinds = [k for k in kinds if k != "null"]
            if len(kinds) != 1:
                return "json"
            kinds = kinds[0]
        if "enum" in schema and kinds in (None, "string", "integer"):
            values = [v for v in schema["enum"] or () if v is not None]
            if values and all(isinstance(v, str | int) for v in values):
                return "enum"
        if kinds == "object" or (kinds is None and schema.get("properties")):
            return "object" if schema.get("properties") else "json"
        if kinds in ("array", "integer", "number", "string", "boolean"):
            return str(kinds)
        return "json"

    # -- output types ----------------------------------------------------------------------

    def output(self, node: Any, where: Pointer, context: str) -> GraphQLNullableOutputType:
        """The (nullable) output type of the schema `node`; `context` names an inline one."""
        schema, at = self.flatten(node, where)
        kind = self.kind(schema)
        if kind == "json" and ("oneOf" in schema or "anyOf" in schema):
            union = self.union(schema, at, context)
            if union is not None:
                return union
        if kind == "array":
            item, _ = self.flatten(schema.get("items", {}), (*at, "items"))
            item_type = self.output(schema.get("items", {}), (*at, "items"), context)
            return GraphQLList(item_type if is_nullable(item) else GraphQLNonNull(item_type))
        if kind == "object":
            return self.object(schema, at, context).type
        if kind == "enum":
            return self.enum(schema, at, context)
        return self.scalar(kind, schema)  # type: ignore[no-any-return]

    def scalar(self, kind: str, schema: Mapping[str, Any]) -> Any:
        if kind == "integer":
            return INT64 if self.is_wide(schema) else GraphQLInt
        return {
            "number": GraphQLFloat,
            "string": GraphQLString,
            "boolean": GraphQLBoolean,
        }.get(kind, JSON)

    @staticmethod
    def is_wide(schema: Mapping[str, Any]) -> bool:
        """An int64 that may leave 32 bits (no `minimum`/`maximum` keeping it inside)."""
        if schema.get("format") != "int64":
            return False
        low, high = schema.get("minimum"), schema.get("maximum")
        if not (isinstance(low, int | float) and isinstance(high, int | float)):
            return True
        return not (low >= INT32_MIN and high <= INT32_MAX)

    def type_name_for(self, at: Pointer, context: str) -> tuple[str, bool]:
        component = component_name(at)
        base = type_name(component) if component is not None else type_name(context)
        return self.prefix + base, component is not None

    def object(self, schema: Mapping[str, Any], at: Pointer, context: str) -> ObjectSpec:
        key = (self.source, at)
        found = self.registry.named.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        wanted, component = self.type_name_for(at, context)
        name = self.registry.claim(wanted, self.source, at, component)
        properties = dict(schema.get("properties") or {})
        spec = ObjectSpec(name, self.source, at, {})
        self.registry.named[key] = spec
        self.registry.objects[name] = spec
        required = set(schema.get("required") or ())
        records = self.registry.records
        records.add(name, list(properties))  # before the properties: they may name this type
        attributes = records.attributes[name]
        for prop, prop_node in properties.items():
            prop_at = (*at, "properties", prop)
            prop_schema, _ = self.flatten(prop_node, prop_at)
            spec.properties[prop] = prop_schema
            if prop_schema.get("writeOnly"):
                continue  # sent, never answered (a password)
            gql: Any = self.output(prop_node, prop_at, name + type_name(prop))
            if prop in required and not is_nullable(prop_schema):
                gql = GraphQLNonNull(gql)
            records.set_output(name, prop, gql)
            read = attrgetter(attributes[prop])
            made = read_field(gql, read, description=prop_schema.get("description"))
            if is_object_list(gql):
                made.extensions[LIST_SIZE] = ""  # costs `limits.default_list_size`
            spec.fields[spec.names.take(graphql_name(prop))] = made
        return spec

    def union(
        self, schema: Mapping[str, Any], at: Pointer, context: str
    ) -> GraphQLUnionType | None:
        """A `oneOf`/`anyOf` of objects as a union (`None`: not all of them are objects).

        Inline members are named `<Union>Option<n>`. An answer's member is the one its
        `discriminator` names, else the first whose required properties it all has."""
        key = (self.source, at)
        found = self.registry.unions.get(key)
        if found is not None:
            return found
        word = "oneOf" if "oneOf" in schema else "anyOf"
        members = schema.get(word)
        if not isinstance(members, list) or not members:
            return None
        flat = [self.flatten(m, (*at, word, i)) for i, m in enumerate(members)]
        if not all(self.kind(member) == "object" for member, _ in flat):
            return None
        wanted, component = self.type_name_for(at, context)
        name = self.registry.claim(wanted, self.source, at, component)
        options = [
            (self.object(member, m_at, f"{name}Option{i + 1}"), set(member.get("required") or ()))
            for i, (member, m_at) in enumerate(flat)
        ]
        discriminator = schema.get("discriminator") or {}
        tag = discriminator.get("propertyName") if isinstance(discriminator, Mapping) else None
        mapping = dict(discriminator.get("mapping") or {}) if tag else {}
        by_tag = {
            str(value): spec.name
            for value, ref in mapping.items()
            for spec, _ in options
            if spec.where == tuple(str(ref).removeprefix("#/").split("/"))
        }
        by_tag.update({component_name(spec.where) or "": spec.name for spec, _ in options})

        def pick(value: Mapping[str, Any]) -> str:
            if tag is not None and str(value.get(tag)) in by_tag:
                return by_tag[str(value.get(tag))]
            for spec, required in options:
                if required <= value.keys():
                    return spec.name
            return options[0][0].name

        records = self.registry.records
        records.picks[name] = pick  # an answer's members are built into their records by it
        by_record = {records.classes[spec.name]: spec.name for spec, _ in options}

        def resolve_type(value: Any, info: Any, abstract: Any) -> str | None:
            return by_record.get(type(value))

        made = self.registry.unions[key] = GraphQLUnionType(
            name, [spec.type for spec, _ in options], resolve_type=resolve_type
        )
        return made

    def enum(self, schema: Mapping[str, Any], at: Pointer, context: str) -> GraphQLEnumType:
        key = (self.source, at)
        found = self.registry.enums.get(key)
        if found is not None:
            return found
        wanted, component = self.type_name_for(at, context)
        name = self.registry.claim(wanted, self.source, at, component)
        names = NameSet()
        values = {
            names.take(enum_value_name(value)): GraphQLEnumValue(value)
            for value in schema["enum"]
            if value is not None
        }
        made = self.registry.enums[key] = GraphQLEnumType(
            name, values, description=schema.get("description")
        )
        return made

    # -- input types -----------------------------------------------------------------------

    def input(self, node: Any, where: Pointer, context: str) -> GraphQLNullableInputType:
        """The (nullable) input type of the schema `node`."""
        schema, at = self.flatten(node, where)
        kind = self.kind(schema)
        if kind == "array":
            item, _ = self.flatten(schema.get("items", {}), (*at, "items"))
            item_type = self.input(schema.get("items", {}), (*at, "items"), context)
            return GraphQLList(item_type if is_nullable(item) else GraphQLNonNull(item_type))
        if kind == "object":
            return self.input_object(schema, at, context)
        if kind == "enum":
            return self.enum(schema, at, context)
        return self.scalar(kind, schema)  # type: ignore[no-any-return]

    def input_object(
        self, schema: Mapping[str, Any], at: Pointer, context: str
    ) -> GraphQLInputObjectType:
        key = (self.source, at)
        found = self.registry.inputs.get(key)
        if found is not None:
            return found
        wanted, component = self.type_name_for(at, context)
        if not wanted.endswith("Input"):
            wanted += "Input"
        name = self.registry.claim(wanted, self.source, at, component)
        fields: dict[str, GraphQLInputField] = {}
        made = self.registry.inputs[key] = GraphQLInputObjectType(name, lambda: fields)
        required = set(schema.get("required") or ())
        names = NameSet()
        base = name.removesuffix("Input")
        for prop, prop_node in (schema.get("properties") or {}).items():
            prop_at = (*at, "properties", prop)
            prop_schema, _ = self.flatten(prop_node, prop_at)
            if prop_schema.get("readOnly"):
                continue  # the server sets it; a client never sends it
            gql: Any = self.input(prop_node, prop_at, base + type_name(prop))
            if prop in required and not is_nullable(prop_schema) and "default" not in prop_schema:
                gql = GraphQLNonNull(gql)
            fields[names.take(graphql_name(prop))] = GraphQLInputField(
                gql, out_name=prop, description=prop_schema.get("description")
            )
        return made


def is_object_list(type_: Any) -> bool:
    return isinstance(get_nullable_type(type_), GraphQLList) and isinstance(
        get_named_type(type_), GraphQLObjectType
    )
