"""OpenAPI sources over a messy real-world-like pair of documents: a lending library.

`tests/openapi/library.yaml` (3.0, YAML) and `tests/openapi/people.json` (3.1, JSON) have XML
and form variants beside JSON, `$ref` chains, `allOf`, enums, arrays of objects, path and query
parameters, required bodies, int64 values beyond 32 bits and names GraphQL forbids. They are
served by `tests.library_service` on loopback; calls are counted at the service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import yaml
from graphql import GraphQLSchema, build_schema, print_schema
from hypothesis import strategies as st

from bff.app import create_app
from bff.auth import Principal
from bff.config import Settings, load_settings
from bff.graphql.executor import GraphQLExecutor, RequestErrors
from bff.graphs import served_graph
from bff.serving import BackgroundServer
from bff.sources.calls import text
from bff.sources.links import first_of_each
from bff.sources.records import record_class
from bff.upstream import Upstreams
from tests.library_service import BIG, BOOKS, Library
from tests.querygen import GeneratedQuery, queries
from tests.support import GraphQLClient, running_gateway, sign
from tests.test_fastpath_equivalence import PRINCIPALS, observe, settle

DOCUMENTS = Path(__file__).parent / "openapi"

LINKS = [
    {"type": "Loan", "field": "book", "source": "library", "operation": "getBook",
     "key": "isbn", "argument": "isbn-13"},
    {"type": "Loan", "field": "member", "source": "people", "operation": "member",
     "key": "memberId", "argument": "memberId"},
    {"type": "Book", "field": "authors", "source": "people", "operation": "authors",
     "key": "authorIds", "argument": "id", "result": "data", "match": "id"},
]  # fmt: skip


def library_config(url: str, **changes: Any) -> dict[str, Any]:
    upstreams = {name: {"instances": [{"url": url}]} for name in ("library", "people")}
    config: dict[str, Any] = {
        "graph": "none",
        "upstreams": upstreams,
        "auth": {"jwt": {"algorithm": "HS256", "secret": "test-secret-0123456789-abcdefghij"}},
        "rate_limits": {"enabled": False},
        "sources": [
            {"name": "library", "upstream": "library", "openapi": "library.yaml", "auth": "public",
             "headers": {"X-Api-Version": "2"}},
            {"name": "people", "upstream": "people", "openapi": "people.json",
             "auth": {"scopes": ["people:read"]}},
        ],
        "links": LINKS,
    }  # fmt: skip
    config.update(changes)
    return config


def write(tmp: Path, config: dict[str, Any]) -> Path:
    """The config as a file beside copies of the documents (their paths are relative)."""
    for document in DOCUMENTS.iterdir():
        shutil.copy(document, tmp / document.name)
    path = tmp / "bff.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def library() -> Iterator[tuple[Library, str]]:
    service = Library()
    with BackgroundServer(service.app) as server:
        yield service, server.url


@pytest.fixture(scope="module")
def settings(library: tuple[Library, str], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(write(tmp_path_factory.mktemp("library"), library_config(library[1])))


@pytest.fixture(scope="module")
def gql(settings: Settings) -> Iterator[GraphQLClient]:
    with running_gateway(settings) as url:
        client = GraphQLClient(url)
        yield client
        client.close()


@pytest.fixture
def service(library: tuple[Library, str]) -> Library:
    library[0].calls.clear()
    return library[0]


def test_the_generated_schema(settings: Settings) -> None:
    schema = served_graph(settings).schema
    sdl = print_schema(schema)
    build_schema(sdl)  # the printed SDL is valid GraphQL
    book = schema.type_map["Book"]
    fields = {name: str(f.type) for name, f in book.fields.items()}  # type: ignore[attr-defined]
    assert fields == {
        "isbn": "String!",
        "title": "String!",
        "created_at": "String",  # `created-at`
        "genre": "Genre!",  # a component enum, through a $ref
        "format": "BookFormat",  # an inline enum, named by its place
        "isbnNumber": "Int64!",  # int64 without bounds: may leave 32 bits
        "copies": "Int",  # int64 kept in 32 bits by minimum/maximum
        "authorIds": "[Int!]",
        "_2ndEdition": "Boolean",
        "_meta": "JSON",  # free-form object; `__meta`
        "price": "JSON",  # oneOf of scalars
        "award": "BookAward",  # a oneOf of objects: a union
        "editions": "[BookEditions!]",  # an array of inline objects
        "authors": "[Author!]",  # a link over a list of keys
    }
    assert "enum BookFormat {\n  hardcover\n  paperback\n  e_book\n  null_\n}" in sdl
    assert "enum Genre {\n  fiction\n  non_fiction\n  poetry\n}" in sdl
    query = schema.query_type
    assert query is not None
    assert set(query.fields) == {"getBook", "searchBooks", "loans", "authors", "member"}
    assert str(query.fields["getBook"].type) == "Book"  # aliases BookRef -> BookAlias -> Book
    assert {n: str(a.type) for n, a in query.fields["getBook"].args.items()} == {
        "isbn_13": "String!"
    }
    search = query.fields["searchBooks"]
    assert {n: str(a.type) for n, a in search.args.items()} == {
        "page_size_": "Int",
        "genre": "Genre",
        "tags": "[String!]",
        "available": "Boolean",
    }
    assert search.args["page_size_"].default_value == 10
    assert str(query.fields["member"].args["memberId"].type) == "Int64!"
    assert set(query.fields["loans"].args) == {"state"}  # the header comes from the config
    mutation = schema.mutation_type
    assert mutation is not None
    assert {n: str(a.type) for n, a in mutation.fields["addBook"].args.items()} == {
        "input": "NewBookInput!"
    }
    new_book = schema.type_map["NewBookInput"]
    assert set(new_book.fields) == {"isbn", "title", "genre", "isbnNumber"}  # type: ignore[attr-defined]
    assert str(mutation.fields["lend"].args["input"].type) == "LendInput!"
    for absent in ("Unused", "BookRef", "BookAlias", "Problem", "Error"):
        assert absent not in schema.type_map
    assert str(schema.type_map["Author"].fields["born"].type) == "Int"  # type: ignore[attr-defined]
    member = schema.type_map["Member"]
    assert set(member.fields) == {"memberId", "name", "level"}  # type: ignore[attr-defined]


def test_operations_that_cannot_be_served_are_left_out_with_one_note_each(
    settings: Settings,
) -> None:
    notes = served_graph(settings).notes
    assert len(notes) == 3
    assert notes[0].startswith("sources.library: operation exportCatalogue left out: no 2xx")
    assert notes[1].startswith("sources.library: operation auditLog left out: required header")
    assert notes[2].startswith("sources.library: operation whoAmI left out: required cookie")


def test_a_book_read_under_valid_names(gql: GraphQLClient, service: Library) -> None:
    book = gql.data(
        '{ getBook(isbn_13: "978-2") { isbn title created_at genre format isbnNumber copies'
        " _2ndEdition _meta price editions { year publisher } } }"
    )["getBook"]
    raw = BOOKS["978-2"]
    assert book == {
        "isbn": "978-2",
        "title": raw["title"],
        "created_at": raw["created-at"],
        "genre": "poetry",
        "format": "e_book",  # `e-book`
        "isbnNumber": BIG + 2,  # exact, beyond 32 bits
        "copies": 2,
        "_2ndEdition": True,
        "_meta": raw["__meta"],
        "price": "on request",
        "editions": [{"year": 1992, "publisher": "Acme"}, {"year": 2002, "publisher": None}],
    }
    assert service.calls == {"GET /books/978-2": 1}


def test_query_parameters_keep_their_document_names(gql: GraphQLClient, service: Library) -> None:
    books = gql.data("{ searchBooks(page_size_: 1, genre: non_fiction) { isbn genre } }")
    assert books == {"searchBooks": [{"isbn": "978-1", "genre": "non_fiction"}]}


def test_a_path_link_calls_once_per_distinct_key_and_a_404_is_null(
    gql: GraphQLClient, service: Library
) -> None:
    body = gql.execute(
        "{ loans { loans { id state book { title } member { name memberId } } next } }",
        token=sign(scopes=["people:read"]),
    )
    assert "errors" not in body, body["errors"]
    loans = body["data"]["loans"]["loans"]
    assert [loan["book"] and loan["book"]["title"] for loan in loans] == [
        "Book 1", "Book 2", "Book 1", None, "Book 3",
    ]  # fmt: skip
    assert [loan["member"] and loan["member"]["memberId"] for loan in loans] == [
        BIG * 10 + 1, BIG * 10 + 2, BIG * 10 + 1, None, BIG * 10 + 3,
    ]  # fmt: skip
    assert service.calls == {
        "GET /loans": 1,
        "GET /books/978-1": 1,
        "GET /books/978-2": 1,
        "GET /books/978-3": 1,
        "GET /books/978-404": 1,
        f"GET /members/{BIG * 10 + 1}": 1,
        f"GET /members/{BIG * 10 + 2}": 1,
        f"GET /members/{BIG * 10 + 3}": 1,
        "GET /members/77": 1,
    }
    assert service.headers["GET /loans"]["x-api-version"] == "2"  # `sources[].headers`
    assert service.headers["GET /loans"]["x-user-scopes"] == "people:read"
    assert "x-api-version" not in service.headers["GET /members/77"]  # another source's


def test_a_query_link_batches_every_key_of_a_level_in_one_call(
    gql: GraphQLClient, service: Library
) -> None:
    books = gql.data(
        "{ searchBooks { isbn authorIds authors { id name born } } }",
        token=sign(scopes=["people:read"]),
    )["searchBooks"]
    for book in books:
        assert [a["id"] for a in book["authors"]] == [i for i in book["authorIds"] if i <= 6]
    assert books[1]["authors"][1] == {"id": 3, "name": "Author 3", "born": None}
    assert service.calls == {"GET /books": 1, "GET /authors": 1}


def test_a_source_scope_guards_its_links_only(gql: GraphQLClient, service: Library) -> None:
    body = gql.execute('{ getBook(isbn_13: "978-1") { title authors { name } } }')
    assert body["data"] == {"getBook": {"title": "Book 1", "authors": None}}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    body = gql.execute('{ getBook(isbn_13: "978-1") { authors { name } } }', token=sign(scopes=[]))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert "GET /authors" not in service.calls


def test_a_body_goes_out_under_its_document_names(gql: GraphQLClient, service: Library) -> None:
    added = gql.data(
        'mutation { addBook(input: {isbn: "978-9", title: "New", genre: non_fiction,'
        ' isbnNumber: "9780000000099"}) { isbn genre isbnNumber } }'
    )["addBook"]
    assert added == {"isbn": "978-9", "genre": "non_fiction", "isbnNumber": 9780000000099}
    assert service.bodies[-1] == {
        "isbn": "978-9", "title": "New", "genre": "non-fiction", "isbnNumber": 9780000000099,
    }  # fmt: skip


def test_a_refused_mutation_keeps_the_upstreams_short_detail(gql: GraphQLClient) -> None:
    body = gql.execute(
        'mutation { addBook(input: {isbn: "978-1", title: "Dup", genre: poetry}) { isbn } }'
    )
    assert body["data"] == {"addBook": None}
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "isbn taken"
    body = gql.execute('mutation { lend(input: {isbn: "978-1", memberId: 1}) { id } }')
    assert [(e["message"], e["path"]) for e in body["errors"]] == [("that book is out", ["lend"])]


def test_int64_refuses_what_it_cannot_carry(gql: GraphQLClient) -> None:
    body = gql.post("{ member(memberId: 1.5) { name } }").json()
    assert body.get("data") is None
    assert "Int64" in body["errors"][0]["message"]


def test_the_gateway_logs_each_operation_left_out_once_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bff"):
        create_app(settings)
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert [m.split(" left out")[0] for m in left_out] == [
        "sources.library: operation exportCatalogue",
        "sources.library: operation auditLog",
        "sources.library: operation whoAmI",
    ]


def test_a_one_of_objects_is_a_union_resolved_by_its_discriminator(
    gql: GraphQLClient, service: Library
) -> None:
    query = (
        "{ searchBooks(page_size_: 3) { isbn award { __typename ... on Prize { name year }"
        " ... on Nomination { list } } } }"
    )
    books = gql.data(query)["searchBooks"]
    assert [b["award"] for b in books] == [
        {"__typename": "Prize", "name": "Hugo", "year": 1990},
        {"__typename": "Nomination", "list": "Booker"},
        None,
    ]


def test_a_path_argument_is_escaped_into_one_segment(gql: GraphQLClient, service: Library) -> None:
    body = gql.execute('{ getBook(isbn_13: "978 1?x=1#y") { title } }')
    assert body["data"] == {"getBook": None} and "errors" not in body  # unknown: 404
    assert list(service.calls) == ["GET /books/978 1%3Fx=1%23y"]  # one segment
    body = gql.execute('{ getBook(isbn_13: "978-1/../../loans") { title } }')
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    assert len(service.calls) == 1  # a slash in a segment is refused before any call


LIBRARY_CASES = [
    '{ getBook(isbn_13: "978-3") { isbn created_at genre format isbnNumber copies _2ndEdition'
    " _meta price editions { year publisher } authors { id name born links } } }",
    '{ a: getBook(isbn_13: "978-404") { title } b: getBook(isbn_13: "978-4") { title format } }',
    "{ loans(state: out) { next loans { id state book { title authors { name } }"
    " member { memberId name level } } } }",
    "{ loans { loans { id member { memberId } book { isbn award { __typename"
    " ... on Prize { year } ... on Nomination { list } } } } } }",
    "query Q($n: Int, $g: Genre) { searchBooks(page_size_: $n, genre: $g) { isbn authors {"
    " id } } member(memberId: 97800000000001) { name } }",
]


@pytest.mark.parametrize("query", LIBRARY_CASES)
def test_the_fast_path_and_graphql_core_agree_on_the_library(
    settings: Settings, query: str
) -> None:
    graph = served_graph(settings)
    executor = GraphQLExecutor(graph.schema, fast=True)
    variables = {"n": 4, "g": "fiction"} if "$n" in query else None

    async def run(principal: Principal, reference: bool) -> object:
        pools = Upstreams.from_settings(settings)
        try:
            result = await executor.execute(
                executor.prepare(query),
                operation_name=None,
                variables=variables,
                context=graph.context(principal, pools),
                reference=reference,
            )
            await settle()
        finally:
            await pools.aclose()
        return observe(result, list(result.errors or ()))

    for principal in [*PRINCIPALS.values(), Principal(sub="3", scopes=frozenset({"people:read"}))]:
        fast = asyncio.run(run(principal, False))
        assert fast == asyncio.run(run(principal, True)), (principal, query)


def test_an_answer_of_the_wrong_shape_is_the_upstreams_fault(gql: GraphQLClient) -> None:
    body = gql.execute('{ getBook(isbn_13: "978-list") { title } }')
    assert body["data"] == {"getBook": None}
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "upstream": "library"}


LIBRARY_POOLS = {
    "isbn_13": lambda _: st.sampled_from(["978-1", "978-2", "978-4", "978-404", "978-list"]),
    "page_size_": lambda _: st.sampled_from([0, 1, 3, 10]),
    "genre": lambda _: st.sampled_from(["fiction", "non_fiction", "poetry"]),
    "tags": lambda _: st.lists(st.sampled_from(["a", "b"]), max_size=2),
    "available": lambda _: st.booleans(),
    "state": lambda _: st.sampled_from(["out", "overdue", "returned"]),
    "memberId": lambda _: st.sampled_from([BIG * 10 + 1, 77, 5]),
    "id": lambda _: st.lists(st.sampled_from([1, 2, 9]), min_size=1, max_size=3),
}


def _library_schema() -> GraphQLSchema:
    """The generated schema, for drawing queries at collection (the documents are read once)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = write(Path(tmp), library_config("http://127.0.0.1:1"))
        return served_graph(load_settings(config, env={})).schema


LIBRARY_SCHEMA = _library_schema()


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)
@hypothesis.given(query=queries(LIBRARY_SCHEMA, LIBRARY_POOLS))
def test_generated_library_queries_agree(settings: Settings, query: GeneratedQuery) -> None:
    hypothesis.note(str(query))
    for principal in (
        PRINCIPALS["anonymous"],
        Principal(sub="3", scopes=frozenset({"people:read"})),
    ):
        fast, reference = (run(settings, query, principal, r) for r in (False, True))
        assert fast == reference, principal


def run(settings: Settings, query: GeneratedQuery, principal: Principal, reference: bool) -> Any:
    """What one executor (the fast path, or graphql-core's as `reference`) answers."""
    graph = served_graph(settings)
    executor = executor_of(graph)

    async def execute() -> object:
        pools = Upstreams.from_settings(settings)
        try:
            prepared = executor.prepare(query.document)
            result = await executor.execute(
                prepared,
                operation_name=query.operation_name,
                variables=query.variables,
                context=graph.context(principal, pools),
                reference=reference,
            )
        except RequestErrors as error:
            return observe(None, error.errors)
        finally:
            await settle()
            await pools.aclose()
        return observe(result, list(result.errors or ()))

    return asyncio.run(execute())


@pytest.mark.parametrize("odd", ["not a loan", 7, ["a", "list"]])
def test_an_item_of_another_structure_is_the_upstreams_error_in_its_place(
    settings: Settings, service: Library, odd: Any
) -> None:
    service.odd_loan = odd
    try:
        query = GeneratedQuery("{ loans { next loans { id book { title } } } }", {}, None)
        fast, reference = (run(settings, query, PRINCIPALS["anonymous"], r) for r in (False, True))
    finally:
        service.odd_loan = None
    assert fast == reference
    assert json.loads(fast.data) == {"loans": {"next": None, "loans": None}}  # `[Loan!]`
    (error,) = (json.loads(e) for e in fast.errors + fast.below_nulled)
    assert error["path"] == ["loans", "loans", 1]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "upstream": "library"}


EXECUTORS: dict[int, GraphQLExecutor] = {}


def executor_of(graph: Any) -> GraphQLExecutor:
    """One executor per schema (its plan cache is what the fast path reuses)."""
    found = EXECUTORS.get(id(graph.schema))
    if found is None:
        EXECUTORS.clear()
        found = EXECUTORS[id(graph.schema)] = GraphQLExecutor(graph.schema, fast=True)
    return found


ITEM = record_class("Item", {"id": "id", "n": "n"})


@pytest.mark.parametrize(
    "items",
    [
        [ITEM(id=1, n="a"), ITEM(id=2, n="b"), ITEM(id=1, n="c"), ITEM(n="no id")],
        [ITEM(id=1, n="a"), "not an object", {"id": 1}, ITEM(id=1, n="c"), None, ITEM(id=2)],
        [],
    ],
)
def test_a_query_link_matches_each_key_to_its_first_item(items: list[Any]) -> None:
    found = first_of_each(items, ITEM, attrgetter("id"))
    expected: dict[Any, Any] = {}
    for item in items:  # the rule, spelled out: records only, the first of a key wins
        if isinstance(item, ITEM) and item.id not in expected:
            expected[item.id] = item
    assert found == expected
    assert all(found[key] is expected[key] for key in expected)  # the same items


def test_a_list_parameter_is_comma_joined_as_json_writes_its_items() -> None:
    assert text([3, 1, 3]) == "3,1,3"
    assert text(("a", 2)) == "a,2"
    assert text([True, 1]) == "true,1"  # a bool is no key: as JSON spells it
    assert text([]) == ""
