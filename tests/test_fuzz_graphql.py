"""Property-based fuzzing of `/graphql` (issue 21, "Bad input"): whatever a client sends, the
gateway answers below 500 with a valid GraphQL response: `data` and/or `errors`, every error
with a `message` and an `extensions.code` from the spec's list (never INTERNAL_SERVER_ERROR),
and it logs no unhandled error.

Documents are drawn from the schema itself: random fields of each type (and names it does not
have), aliases, fragments, arguments of the declared types or of any other JSON value, written
inline or passed as variables (declared with the right type, a wrong one, or an unknown one),
queries and mutations, with or without a token; then bodies that are garbage at every layer
(bytes, JSON of any shape, GraphQL-ish text). Everything goes to a real gateway over a set of
sample services of this module's own (mutations write there), by POST and GET under both
media types. The whole module is bounded by `BUDGET` seconds: hypothesis' example counts are
sized to fit it, and examples past it return at once.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    get_named_type,
    is_input_object_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from bench.openapi import shop_sources
from bff.errors import CODES
from bff.graphs import served_graph
from services import RunningServices
from tests.support import SHOP_SCHEMA, gateway_settings, running_gateway, running_shop, sign

BUDGET = 120.0  # seconds for the whole module, examples included
GQL = "application/graphql-response+json"
MEDIA = (GQL, "application/json", None)
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- values ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["id", "first", "after", "ids", "x", "input", "__typename", "é", "_"])
STRINGS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "1", "42", "-1", "99999", "abc", "bad!cursor", "\u0000", "\ud7ff"]),
)
NUMBERS = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 20, 1000, 1001, -1, 2**31, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
ANY_JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(NAMES, st.text(max_size=8)), inner)
    ),
    max_leaves=12,
)


def typed_value(kind: GraphQLType, strict: bool = False, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of input type `kind`: `strict` ones a resolver accepts (small counts, ids that
    exist), else also ones that are not quite right (null for non-null, numbers out of range,
    a wrong leaf, a missing or an extra field)."""
    if is_non_null_type(kind):
        assert isinstance(kind, GraphQLNonNull)
        inner = typed_value(kind.of_type, strict, depth)
        return inner if strict else st.one_of(inner, inner, inner, st.none())
    if is_list_type(kind):
        assert isinstance(kind, GraphQLList)
        item = typed_value(kind.of_type, strict, depth + 1)
        many = st.lists(item, max_size=4 if strict else 6)
        return many if strict else st.one_of(many, item)  # one value is coerced to a list
    if is_input_object_type(kind):
        assert isinstance(kind, GraphQLInputObjectType)
        if depth > 3:
            return st.just({})
        fields = {name: typed_value(f.type, strict, depth + 1) for name, f in kind.fields.items()}
        complete = st.fixed_dictionaries(fields)
        if strict:
            return complete
        partial = st.fixed_dictionaries({}, optional=fields)
        extra = st.fixed_dictionaries(fields, optional={"bogus": JSON_LEAVES})
        return st.one_of(complete, complete, partial, extra)
    if isinstance(kind, GraphQLEnumType):
        return st.sampled_from(list(kind.values))
    name = get_named_type(kind).name
    valid: dict[str, st.SearchStrategy[Any]] = {
        "Int": st.integers(1, 5),
        "Float": st.floats(0, 100),
        "String": st.sampled_from(["books", "garden", "user2", "password2", "fine", ""]),
        "Boolean": st.booleans(),
        "ID": st.integers(1, 60).map(str),
    }
    if strict:
        return valid.get(name, STRINGS)
    loose: dict[str, st.SearchStrategy[Any]] = {
        "Int": st.one_of(st.integers(-3, 30), NUMBERS),
        "Float": NUMBERS,
        "String": STRINGS,
        "Boolean": st.booleans(),
        "ID": st.one_of(st.integers(1, 80).map(str), st.integers(-2, 90), STRINGS),
    }
    return st.one_of(loose.get(name, STRINGS), st.sampled_from([None, [], {}, True]))


def literal(value: Any) -> str:
    """`value` written as a GraphQL literal (strings as JSON strings, which GraphQL reads)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        parts = [f"{k if k.isidentifier() else 'k'}: {literal(v)}" for k, v in value.items()]
        return "{" + ", ".join(parts) + "}"
    raise TypeError(value)


# --- documents ------------------------------------------------------------------------------


MAX_DEPTH = 4  # selection-set nesting of drawn documents (a root field is depth 1)
ODD = 35  # percent of documents that get twists (wrong names, types, values, shapes)
# How an argument of an odd document is written: mostly values the resolvers accept, so that
# its other twists still reach execution; then values of the declared type that are not quite
# right; then any JSON at all; each inline or through a variable. Plain documents only use
# valid values.
HOW = ["valid"] * 3 + ["variable-valid"] * 2 + ["typed", "variable-typed", "any", "variable-any"]


class Document:
    """A document under construction: its variable definitions and values, its fragments.

    A plain document is valid by construction (unique fields, leaves at the bottom, values the
    resolvers take), so it runs through execution and the upstream calls; an odd one also
    gets twists, each with a small chance, so that most of its requests still parse."""

    def __init__(self, draw: st.DrawFn, schema: GraphQLSchema) -> None:
        self.draw = draw
        self.schema = schema
        self.definitions: list[str] = []
        self.values: dict[str, Any] = {}
        self.fragments: list[str] = []
        # Odds from a seeded Random: hypothesis draws small integers at their bounds far more
        # often than their share, which would make every rare twist common.
        self.random = random.Random(draw(st.integers(0, 2**32)))
        self.odd = self.chance(ODD)

    def chance(self, percent: float) -> bool:
        return self.random.random() * 100 < percent

    def twist(self, percent: float) -> bool:
        return self.odd and self.chance(percent)

    def argument(self, name: str, kind: GraphQLInputType) -> str:
        how = self.random.choice(HOW) if self.odd else self.random.choice(HOW[:5])
        values = {
            "valid": typed_value(kind, strict=True),
            "typed": typed_value(kind),
            "any": ANY_JSON,
        }
        if how in values:
            return f"{name}: {literal(self.draw(values[how]))}"
        variable = f"v{len(self.definitions)}"
        declared = str(kind)
        if self.twist(10):
            declared = self.random.choice(["Int", "String!", "[ID]", "Nope", "Float!"])
        default = ""
        if self.chance(15):
            default = f" = {literal(self.draw(typed_value(kind, strict=not self.odd)))}"
        self.definitions.append(f"${variable}: {declared}{default}")
        if not self.twist(10):  # else left out: a required one is then missing
            self.values[variable] = self.draw(values[how.removeprefix("variable-")])
        return f"{name}: ${variable}"

    def selection(self, parent: GraphQLObjectType, depth: int) -> str:
        names = sorted(parent.fields)
        if depth >= MAX_DEPTH:  # leaves only
            names = [n for n in names if not is_object_type(get_named_type(parent.fields[n].type))]
        names.append("__typename")
        count = self.draw(st.integers(1, min(3, len(names))))
        picked = self.random.sample(names, count)
        if self.twist(10):
            picked.append(self.random.choice(picked))  # twice: arguments may conflict
        parts: list[str] = []
        for index, name in enumerate(picked):
            if self.twist(5):
                name = self.random.choice(["bogus", "nodes", "id", "__schema"])
            alias = f"a{index}: " if self.chance(20) else ""
            parts.append(alias + self.field(parent, name, depth))
        if self.chance(10):
            fragment = f"F{len(self.fragments)}"
            self.fragments.append(f"fragment {fragment} on {parent.name} {{ __typename }}")
            parts.append(f"...{fragment}")
        if self.chance(5):
            parts.append(f"... on {parent.name} {{ __typename }}")
        return "{ " + " ".join(parts) + " }"

    def field(self, parent: GraphQLObjectType, name: str, depth: int) -> str:
        definition = parent.fields.get(name)
        if definition is None:
            return name
        arguments = [
            self.argument(arg_name, arg.type)
            for arg_name, arg in definition.args.items()
            if is_non_null_type(arg.type) or self.chance(50)
        ]
        if self.twist(3):
            arguments.append(f"bogus: {literal(self.draw(JSON_LEAVES))}")
        text = name + (f"({', '.join(arguments)})" if arguments else "")
        target = get_named_type(definition.type)
        if is_object_type(target):
            assert isinstance(target, GraphQLObjectType)
            if not self.twist(5):  # else no selection: a validation error
                text += " " + self.selection(target, depth + 1)
        elif self.twist(2):
            text += " { id }"
        return text


@st.composite
def requests(draw: st.DrawFn, schema: GraphQLSchema = SHOP_SCHEMA) -> dict[str, Any]:
    """A GraphQL request over `schema` (`query`, maybe `variables` and `operationName`) and
    whether it carries a token."""
    document = Document(draw, schema)
    mutation = schema.mutation_type is not None and document.chance(25)
    root = schema.mutation_type if mutation else schema.query_type
    assert root is not None
    body = document.selection(root, 1)
    name = draw(st.sampled_from(["", " Q", " Dashboard"]))
    head = ("mutation" if mutation else "query") + name
    if document.definitions:
        head += "(" + ", ".join(document.definitions) + ")"
    operation = body
    if document.definitions or name or mutation or document.chance(50):
        operation = f"{head} {body}"
    text = "\n".join([operation, *document.fragments])
    request: dict[str, Any] = {"query": text}
    if document.values or document.chance(20):
        request["variables"] = document.values
    if document.chance(20):
        request["operationName"] = draw(st.sampled_from(["Q", "Dashboard", "Other", None, ""]))
    return {"json": request, "token": document.chance(60) or mutation}


def deep_body(depth: int, opener: str, query: str) -> bytes:
    """A request whose variable `x` nests `depth` lists or objects (JSON parsers stop
    somewhere; so must everything that walks or writes variables)."""
    closer = {"[": "]", '{"a":': "}"}[opener]
    value = opener * depth + "1" + closer * depth
    return b'{"query": %s, "variables": {"x": %s}}' % (json.dumps(query).encode(), value.encode())


DEEP_BODIES = st.builds(
    deep_body,
    st.integers(1, 1500),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(
        [
            "{ __typename }",
            "query($x: [ID!]!) { users(ids: $x) { id } }",
            "query($x: PlaceOrderInput!) { __typename }",
            "query($x: ID) { user(id: $x) { id } }",
        ]
    ),
)
GARBAGE_BODIES = st.one_of(
    DEEP_BODIES,
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    ANY_JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "query": st.one_of(ANY_JSON, st.text(max_size=60), st.just("{ __typename }")),
            "variables": ANY_JSON,
            "operationName": ANY_JSON,
            "extensions": st.one_of(
                ANY_JSON,
                st.fixed_dictionaries({"persistedQuery": ANY_JSON}),
                st.fixed_dictionaries(
                    {
                        "persistedQuery": st.fixed_dictionaries(
                            {"version": ANY_JSON, "sha256Hash": st.one_of(STRINGS, ANY_JSON)}
                        )
                    }
                ),
            ),
        },
    ).map(lambda v: json.dumps(v).encode()),
)
GRAPHQLISH = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ":",
            "$v",
            "...",
            "@skip",
            "on",
            "query",
            "mutation",
            "fragment",
            "product",
            "id",
            "orders",
            "nodes",
            "first: 1",
            '"s"',
            "1",
            "#",
            "\n",
            "__typename",
            "user",
            "ids",
            "!",
            "=",
            "&",
            "|",
            "\u0000",
            "é",
        ]
    ),
    max_size=40,
).map(" ".join)


# --- the gateway ----------------------------------------------------------------------------


class Clock:
    """The module's time budget, started by the first example."""

    def __init__(self) -> None:
        self.started: float | None = None

    def spent(self) -> bool:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        return now - self.started > BUDGET


class Unhandled(logging.Handler):
    """Records every ERROR the gateway logs (a masked 500 logs one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def fuzz_shop() -> Iterator[RunningServices]:
    with running_shop() as shop:
        yield shop


@pytest.fixture(scope="module")
def http(fuzz_shop: RunningServices) -> Iterator[httpx.Client]:
    with (
        running_gateway(gateway_settings(fuzz_shop.urls)) as url,
        httpx.Client(base_url=url, timeout=30, trust_env=False) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def unhandled() -> Iterator[Unhandled]:
    handler = Unhandled()
    logger = logging.getLogger()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def check(response: httpx.Response, unhandled: Unhandled) -> None:
    """The properties every answer has, whatever was asked."""
    note(f"{response.status_code} {response.text[:1000]}")
    body = response.json() if response.status_code < 500 else {}
    codes = sorted({e["extensions"]["code"] for e in body.get("errors", []) if "extensions" in e})
    first = body.get("errors", [{}])[0].get("message", "")[:40]
    event(f"{response.status_code} {' '.join(codes) or 'no errors'} {first}")
    assert response.status_code < 500
    assert unhandled.records == []
    media = response.headers["content-type"].split(";")[0]
    assert media in (GQL, "application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) <= {"data", "errors", "extensions"}
    assert "data" in body or "errors" in body
    if response.status_code != 200:
        assert body.get("data") is None and body["errors"]
    for error in body.get("errors", []):
        assert isinstance(error["message"], str) and error["message"]
        assert error["extensions"]["code"] in CODES
        assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", error
    if "data" in body and body["data"] is not None:
        assert isinstance(body["data"], dict)


def send(
    http: httpx.Client, request: dict[str, Any], method: str, media: str | None, token: bool
) -> httpx.Response:
    headers = {"Accept": media} if media else {}
    if token:
        headers["Authorization"] = f"Bearer {sign('2', ('orders:read',))}"
    if method == "GET":
        params = {
            k: v if isinstance(v, str) else json.dumps(v)
            for k, v in request.items()
            if v is not None
        }
        return http.get("/graphql", params=params, headers=headers)
    return http.post("/graphql", json=request, headers=headers)


@settings(FUZZ, max_examples=700)
@given(
    request=requests(),
    method=st.sampled_from(["POST", "POST", "GET"]),
    media=st.sampled_from(MEDIA),
)
def test_documents_from_the_schema_get_graphql_answers(
    http: httpx.Client,
    unhandled: Unhandled,
    clock: Clock,
    request: dict[str, Any],
    method: str,
    media: str | None,
) -> None:
    if clock.spent():
        return
    unhandled.records.clear()  # an earlier example's failure is reported there
    note(json.dumps(request["json"])[:2000])
    check(send(http, request["json"], method, media, request["token"]), unhandled)


@settings(FUZZ, max_examples=400)
@given(body=GARBAGE_BODIES, media=st.sampled_from(MEDIA), token=st.booleans())
def test_garbage_bodies_get_graphql_answers(
    http: httpx.Client,
    unhandled: Unhandled,
    clock: Clock,
    body: bytes,
    media: str | None,
    token: bool,
) -> None:
    if clock.spent():
        return
    unhandled.records.clear()  # an earlier example's failure is reported there
    note(repr(body[:2000]))
    headers = {"Content-Type": "application/json", **({"Accept": media} if media else {})}
    if token:
        headers["Authorization"] = f"Bearer {sign()}"
    check(http.post("/graphql", content=body, headers=headers), unhandled)


@settings(FUZZ, max_examples=300)
@given(
    query=GRAPHQLISH,
    variables=st.one_of(st.none(), ANY_JSON.map(json.dumps), st.text(max_size=30)),
    method=st.sampled_from(["POST", "GET"]),
    media=st.sampled_from(MEDIA),
)
def test_graphql_like_text_gets_graphql_answers(
    http: httpx.Client,
    unhandled: Unhandled,
    clock: Clock,
    query: str,
    variables: str | None,
    method: str,
    media: str | None,
) -> None:
    if clock.spent():
        return
    unhandled.records.clear()  # an earlier example's failure is reported there
    request: dict[str, Any] = {"query": query}
    if variables is not None:
        request["variables"] = variables  # a string is read as JSON, by POST and by GET
    note(json.dumps(request)[:2000])
    check(send(http, request, method, media, token=False), unhandled)


# --- a graph made from OpenAPI sources ------------------------------------------------------

SOURCES_SETTINGS = gateway_settings(
    {
        name: ["http://127.0.0.1:9"]
        for name in ("users", "catalog", "orders", "reviews", "inventory")
    },
    **shop_sources(),
)
SOURCES_SCHEMA = served_graph(SOURCES_SETTINGS).schema


@pytest.fixture(scope="module")
def sources_http(fuzz_shop: RunningServices) -> Iterator[httpx.Client]:
    """A gateway serving the shop from its OpenAPI documents (`graph: none`, links)."""
    urls = {name: list(fuzz_shop.urls[name]) for name in SOURCES_SETTINGS.upstreams}
    with (
        running_gateway(gateway_settings(urls, **shop_sources())) as url,
        httpx.Client(base_url=url, timeout=30, trust_env=False) as client,
    ):
        yield client


@settings(FUZZ, max_examples=300)
@given(
    request=requests(SOURCES_SCHEMA),
    method=st.sampled_from(["POST", "POST", "GET"]),
    media=st.sampled_from(MEDIA),
)
def test_documents_from_a_generated_schema_get_graphql_answers(
    sources_http: httpx.Client,
    unhandled: Unhandled,
    clock: Clock,
    request: dict[str, Any],
    method: str,
    media: str | None,
) -> None:
    if clock.spent():
        return
    unhandled.records.clear()
    note(json.dumps(request["json"])[:2000])
    check(send(sources_http, request["json"], method, media, request["token"]), unhandled)
