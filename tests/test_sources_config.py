"""OpenAPI sources at start-up: every problem a config error naming the source or link and
the place in the document (a JSON pointer), warnings for operations left out, and sources
beside the shop (`graph: shop`, with `prefix`), through `bff check-config` and `bff schema`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from graphql import build_schema

from bff.config import ConfigError, load_settings
from bff.graphs import served_graph
from services import RunningServices
from tests.support import GraphQLClient, running_gateway, sign
from tests.test_cli import child_env

PETS: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "pets", "version": "1"},
    "paths": {
        "/pets": {
            "get": {
                "operationId": "pets",
                "parameters": [{"name": "ids", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "pets", "content": {"application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}},
            }
        },
        "/pets/{petId}": {
            "get": {
                "operationId": "pet",
                "parameters": [{"name": "petId", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "a pet", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Pet"}}}}},
            }
        },
    },
    "components": {"schemas": {"Pet": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "ownerId": {"type": "integer"}, "name": {"type": "string"}}}}},
}  # fmt: skip
UPSTREAMS = {name: {"instances": [{"url": "http://127.0.0.1:1"}]} for name in ("pets", "zoo")}
SECRET = {"jwt": {"algorithm": "HS256", "secret": "test-secret-0123456789-abcdefghij"}}


def config(tmp: Path, documents: dict[str, Any] | None = None, **changes: Any) -> Path:
    for name, document in (documents or {"pets.json": PETS}).items():
        (tmp / name).write_text(json.dumps(document), encoding="utf-8")
    data: dict[str, Any] = {
        "graph": "none",
        "upstreams": UPSTREAMS,
        "auth": SECRET,
        "sources": [{"name": "pets", "upstream": "pets", "openapi": "pets.json"}],
    }
    data.update(changes)
    path = tmp / "bff.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        served_graph(load_settings(path, env={}))
    return info.value.errors


def broken(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(PETS)
    change(document)
    return document


def test_a_valid_source_builds(tmp_path: Path) -> None:
    graph = served_graph(load_settings(config(tmp_path), env={}))
    assert set(graph.schema.query_type.fields) == {"pets", "pet"}  # type: ignore[union-attr]
    assert graph.upstreams == {"pets"}  # only the upstreams the sources call are required


def test_an_unknown_upstream_names_the_key(tmp_path: Path) -> None:
    path = config(tmp_path, sources=[{"name": "pets", "upstream": "nope", "openapi": "pets.json"}])
    assert problems(path) == [
        "sources[0].upstream: no upstream 'nope'; use a key of upstreams (pets, zoo)"
    ]


def test_an_unreadable_document_names_the_source(tmp_path: Path) -> None:
    path = config(tmp_path, sources=[{"name": "pets", "upstream": "pets", "openapi": "gone.yaml"}])
    (error,) = problems(path)
    assert error.startswith("sources[0].openapi (pets, gone.yaml): #: cannot read gone.yaml")
    (tmp_path / "gone.yaml").write_text("openapi: 2.0\n", encoding="utf-8")
    assert problems(path) == [
        "sources[0].openapi (pets, gone.yaml): #/openapi: not OpenAPI 3.0 or 3.1 (openapi: 2.0)"
    ]


def test_a_bad_parameter_is_reported_at_its_json_pointer(tmp_path: Path) -> None:
    document = broken(lambda d: d["paths"]["/pets"]["get"]["parameters"].__setitem__(0, {}))
    (error,) = problems(config(tmp_path, {"pets.json": document}))
    assert error == (
        "sources[0].openapi (pets, pets.json): #/paths/~1pets/get/parameters/0: "
        "a parameter needs `name` and `in`"
    )


def test_a_dangling_ref_is_reported_where_it_is_written(tmp_path: Path) -> None:
    def dangle(d: dict[str, Any]) -> None:
        d["components"]["schemas"]["Pet"]["properties"]["tag"] = {
            "$ref": "#/components/schemas/Tag"
        }

    (error,) = problems(config(tmp_path, {"pets.json": broken(dangle)}))
    assert error == (
        "sources[0] (pets, pets.json): #/components/schemas/Pet/properties/tag: "
        "$ref #/components/schemas/Tag points to nothing"
    )


def test_an_unknown_operation_id_is_an_error(tmp_path: Path) -> None:
    source = {"name": "pets", "upstream": "pets", "openapi": "pets.json", "operations": ["pest"]}
    assert problems(config(tmp_path, sources=[source])) == [
        "sources[0].operations[0]: pets.json has no operation 'pest' (it has: pet, pets)"
    ]


LINK = {"type": "Pet", "field": "owner", "source": "pets", "operation": "pet", "key": "ownerId",
        "argument": "petId"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"source": "zoo"}, "links[0].source: no source 'zoo'"),
        ({"type": "Cat"}, "links[0].type: no generated type 'Cat' (types: Pet)"),
        ({"field": "name"}, "links[0].field: Pet already has a field 'name'"),
        ({"key": "owner"}, "links[0].key: Pet (pets.json #/components/schemas/Pet) has no "
         "property 'owner'"),
        ({"operation": "adopt"}, "links[0].operation: source pets has no operation 'adopt'"),
        ({"argument": "id"}, "links[0].argument: operation pet (pets.json #/paths/~1pets~1{petId}"
         "/get) has no path or query parameter 'id'"),
        ({"operation": "pets", "argument": "ids"}, "links[0].match: needed with a query "
         "parameter argument"),
        ({"operation": "pets", "argument": "ids", "match": "nope"}, "links[0].match: the items "
         "of pets (#/components/schemas/Pet) have no property 'nope'"),
        ({"operation": "pets", "argument": "ids", "match": "id", "result": "items"},
         "links[0].result: the answer of pets (#/paths/~1pets/get/responses/200/content/"
         "application~1json/schema) has no property 'items'"),
    ],
)  # fmt: skip
def test_a_link_names_what_is_missing(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert problems(config(tmp_path, links=[{**LINK, **change}])) == [expected]


def test_a_good_link_adds_a_field(tmp_path: Path) -> None:
    graph = served_graph(load_settings(config(tmp_path, links=[LINK]), env={}))
    assert str(graph.schema.type_map["Pet"].fields["owner"].type) == "Pet"  # type: ignore[attr-defined]


def two_sources(tmp: Path, prefix: str = "", operations: list[str] | None = None) -> Path:
    second: dict[str, Any] = {"name": "zoo", "upstream": "zoo", "openapi": "zoo.json"}
    if prefix:
        second["prefix"] = prefix
    if operations is not None:
        second["operations"] = operations
    first = {"name": "pets", "upstream": "pets", "openapi": "pets.json"}
    zoo = broken(lambda d: d["paths"].pop("/pets"))
    return config(tmp, {"pets.json": PETS, "zoo.json": zoo}, sources=[first, second])


def test_two_sources_with_one_root_field_is_an_error_until_narrowed(tmp_path: Path) -> None:
    assert problems(two_sources(tmp_path)) == [
        "Query.pet: defined by both sources pets and zoo; narrow one with `operations`"
    ]
    graph = served_graph(load_settings(two_sources(tmp_path, operations=[]), env={}))
    assert set(graph.schema.query_type.fields) == {"pet", "pets"}  # type: ignore[union-attr]


def test_a_type_defined_by_two_sources_needs_a_prefix(tmp_path: Path) -> None:
    zoo_only = broken(lambda d: d["paths"].pop("/pets/{petId}"))
    first = {"name": "pets", "upstream": "pets", "openapi": "pets.json", "operations": ["pet"]}
    second = {"name": "zoo", "upstream": "zoo", "openapi": "zoo.json"}
    path = config(tmp_path, {"pets.json": PETS, "zoo.json": zoo_only}, sources=[first, second])
    assert problems(path) == [
        "sources.zoo: type Pet (#/components/schemas/Pet) is defined by source pets too; give "
        "one of them a `prefix`"
    ]
    path = config(
        tmp_path,
        {"pets.json": PETS, "zoo.json": zoo_only},
        sources=[first, {**second, "prefix": "Zoo"}],
    )
    schema = served_graph(load_settings(path, env={})).schema
    assert {"Pet", "ZooPet"} <= set(schema.type_map)
    assert str(schema.query_type.fields["pets"].type) == "[ZooPet!]"  # type: ignore[union-attr]


def test_graph_none_without_sources_is_an_error(tmp_path: Path) -> None:
    assert problems(config(tmp_path, sources=[])) == [
        "graph: none, and no sources: there is nothing to serve"
    ]


def run_bff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bff.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )


def test_check_config_warns_once_per_operation_left_out(tmp_path: Path) -> None:
    def add_xml_only(d: dict[str, Any]) -> None:
        d["paths"]["/pets.xml"] = {
            "get": {
                "operationId": "petsXml",
                "responses": {
                    "200": {"description": "xml", "content": {"application/xml": {"schema": {}}}}
                },
            }
        }
        d["paths"]["/secret"] = {
            "get": {
                "operationId": "secret",
                "parameters": [{"name": "X-Key", "in": "header", "required": True}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {}}}},
            }
        }

    documents = {"pets.json": broken(add_xml_only)}
    result = run_bff("check-config", str(config(tmp_path, documents)))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "left out" in line]
    assert warnings == [
        "bff: warning: sources.pets: operation petsXml left out: no 2xx answer offers JSON",
        "bff: warning: sources.pets: operation secret left out: required header X-Key "
        "(#/paths/~1secret/get/parameters/0) is not in sources[].headers",
    ]
    source = {"name": "pets", "upstream": "pets", "openapi": "pets.json",
              "headers": {"x-key": "k"}}  # fmt: skip
    result = run_bff("check-config", str(config(tmp_path, documents, sources=[source])))
    assert [line for line in result.stderr.splitlines() if "left out" in line] == [
        "bff: warning: sources.pets: operation petsXml left out: no 2xx answer offers JSON"
    ]


def test_check_config_refuses_a_broken_link_naming_it(tmp_path: Path) -> None:
    result = run_bff("check-config", str(config(tmp_path, links=[{**LINK, "key": "owner"}])))
    assert result.returncode == 1
    assert "links[0].key: Pet (pets.json #/components/schemas/Pet) has no property" in (
        result.stderr
    )


def shop_with_pets(tmp: Path, shop: RunningServices, prefix: str) -> Path:
    upstreams = {n: {"instances": [{"url": u} for u in urls]} for n, urls in shop.urls.items()}
    upstreams["pets"] = {"instances": [{"url": "http://127.0.0.1:1"}]}
    document = copy.deepcopy(PETS)
    document["components"]["schemas"]["Product"] = document["components"]["schemas"].pop("Pet")
    text = json.dumps(document).replace("#/components/schemas/Pet", "#/components/schemas/Product")
    (tmp / "pets.json").write_text(text, encoding="utf-8")
    source = {"name": "pets", "upstream": "pets", "openapi": "pets.json", "prefix": prefix,
              "auth": "public"}  # fmt: skip
    data = {"graph": "shop", "upstreams": upstreams, "auth": SECRET, "sources": [source],
            "rate_limits": {"enabled": False}}  # fmt: skip
    path = tmp / "bff.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_sources_beside_the_shop_need_a_prefix_for_its_type_names(
    tmp_path: Path, shop: RunningServices
) -> None:
    clash = problems(shop_with_pets(tmp_path, shop, ""))
    assert clash == ["type Product: defined by both shop and sources"]
    path = shop_with_pets(tmp_path, shop, "Pets")
    result = run_bff("schema", "--config", str(path))
    assert result.returncode == 0, result.stderr
    schema = build_schema(result.stdout)
    query = schema.query_type
    assert query is not None
    assert {"me", "orders", "pets", "pet"} <= set(query.fields)
    assert str(query.fields["pet"].type) == "PetsProduct"
    assert "login" in schema.mutation_type.fields  # type: ignore[union-attr]
    with running_gateway(load_settings(path, env={})) as url:
        client = GraphQLClient(url)
        body = client.execute('{ product(id: "1") { id } pet(petId: 1) { id } }', token=sign())
        client.close()
    assert body["data"] == {"product": {"id": "1"}, "pet": None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_UNAVAILABLE"]


def test_an_all_of_cycle_is_an_error_at_its_place(tmp_path: Path) -> None:
    def cycle(d: dict[str, Any]) -> None:
        d["components"]["schemas"]["Pet"] = {"allOf": [{"$ref": "#/components/schemas/Pet"}]}

    (error,) = problems(config(tmp_path, {"pets.json": broken(cycle)}))
    assert error == (
        "sources[0] (pets, pets.json): #/components/schemas/Pet: allOf includes the schema itself"
    )
