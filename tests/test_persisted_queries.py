"""Automatic persisted queries (the Apollo protocol), persisted-only mode, the manifest and
`bff persist DIR`, against real gateways (and, for replicas, a real shared Redis)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from bff.cli import main as bff_main
from bff.persisted import sha256_hex
from services import RunningServices
from tests.support import UpstreamCalls, gateway_settings, running_gateway
from tests.test_cli import write_config

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
GQL = {"Accept": "application/graphql-response+json"}


def unique_query() -> str:
    """A document no other test (or earlier run) registered: its hash is fresh."""
    return f"query Fresh {{ product(id: 1) {{ id name }} }} # {uuid.uuid4().hex}"


def extension(document: str, digest: str | None = None) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest or sha256_hex(document)}}


def post(url: str, body: dict[str, Any], accept: dict[str, str] = GQL) -> httpx.Response:
    return httpx.post(f"{url}/graphql", json=body, headers=accept, trust_env=False, timeout=10)


def get(url: str, params: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{url}/graphql", params=params, headers=GQL, trust_env=False, timeout=10)


def code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


def redis_delete(*keys: str) -> None:
    async def delete() -> None:
        redis = Redis.from_url(REDIS_URL)
        try:
            await redis.delete(*keys)
        finally:
            await redis.aclose()

    asyncio.run(delete())


@pytest.fixture(scope="module")
def memory_gateway(shop: RunningServices) -> Iterator[str]:
    with running_gateway(gateway_settings(shop.urls)) as url:
        yield url


def test_an_unknown_hash_is_not_found_then_registered_then_served_by_hash(
    memory_gateway: str, calls: UpstreamCalls
) -> None:
    query = unique_query()
    ask = {"extensions": extension(query)}
    missing = post(memory_gateway, ask)
    assert missing.status_code == 400
    assert code(missing) == "PERSISTED_QUERY_NOT_FOUND"
    assert missing.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert calls.total() == 0
    registered = post(memory_gateway, {"query": query, **ask})
    assert registered.status_code == 200
    assert registered.json()["data"] == {
        "product": {"id": "1", "name": registered.json()["data"]["product"]["name"]}
    }
    by_hash = post(memory_gateway, ask)
    assert by_hash.status_code == 200
    assert by_hash.json()["data"] == registered.json()["data"]
    # GET works the same way, with the extensions as a JSON query parameter
    got = get(memory_gateway, {"extensions": json.dumps(ask["extensions"])})
    assert got.status_code == 200
    assert got.json()["data"] == registered.json()["data"]


def test_not_found_is_200_under_legacy_application_json(memory_gateway: str) -> None:
    response = post(
        memory_gateway, {"extensions": extension(unique_query())}, {"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert code(response) == "PERSISTED_QUERY_NOT_FOUND"


def test_a_hash_that_does_not_match_the_query_is_refused(
    memory_gateway: str, calls: UpstreamCalls
) -> None:
    query = unique_query()
    wrong = extension(query, sha256_hex(query + " "))
    response = post(memory_gateway, {"query": query, "extensions": wrong})
    assert response.status_code == 400
    assert code(response) == "BAD_USER_INPUT"
    assert "does not match" in response.json()["errors"][0]["message"]
    # and nothing was registered under the wrong hash
    assert code(post(memory_gateway, {"extensions": wrong})) == "PERSISTED_QUERY_NOT_FOUND"
    assert calls.total() == 0


@pytest.mark.parametrize(
    "persisted",
    [{"version": 2, "sha256Hash": "0" * 64}, {"version": 1, "sha256Hash": "xyz"}, "nope"],
)
def test_malformed_persisted_query_extensions_are_bad_input(
    memory_gateway: str, persisted: Any
) -> None:
    response = post(memory_gateway, {"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400
    assert code(response) == "BAD_USER_INPUT"


def test_replicas_sharing_redis_serve_each_others_registrations(shop: RunningServices) -> None:
    settings = gateway_settings(shop.urls, redis={"url": REDIS_URL})
    query = unique_query()
    ask = {"extensions": extension(query)}
    try:
        with running_gateway(settings) as one, running_gateway(settings) as two:
            assert code(post(two, ask)) == "PERSISTED_QUERY_NOT_FOUND"
            assert post(one, {"query": query, **ask}).status_code == 200
            answer = post(two, ask)
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["product"]["id"] == "1"
    finally:
        redis_delete(f"bff:pq:apq:{{{sha256_hex(query)}}}")


def test_apq_off_still_runs_full_queries_but_registers_nothing(shop: RunningServices) -> None:
    settings = gateway_settings(shop.urls, persisted_queries={"apq": False})
    query = unique_query()
    ask = {"extensions": extension(query)}
    with running_gateway(settings) as url:
        assert post(url, {"query": query, **ask}).status_code == 200
        assert code(post(url, ask)) == "PERSISTED_QUERY_NOT_FOUND"


# --- persisted-only mode ------------------------------------------------------------------


def test_only_persisted_runs_manifest_hashes_and_refuses_the_rest(
    tmp_path: Path, shop: RunningServices, calls: UpstreamCalls
) -> None:
    allowed = "query Allowed { product(id: 2) { id } }"
    manifest = tmp_path / "persisted.json"
    manifest.write_text(json.dumps({sha256_hex(allowed): allowed}), encoding="utf-8")
    settings = gateway_settings(
        shop.urls, persisted_queries={"only_persisted": True, "manifest": str(manifest)}
    )
    with running_gateway(settings) as url:
        ok = post(url, {"extensions": extension(allowed)})
        assert ok.status_code == 200
        assert ok.json()["data"] == {"product": {"id": "2"}}
        calls.reset()
        adhoc = post(url, {"query": "{ product(id: 3) { id } }"})
        assert adhoc.status_code == 400
        assert code(adhoc) == "PERSISTED_QUERY_REQUIRED"
        other = unique_query()
        assert code(post(url, {"extensions": extension(other)})) == "PERSISTED_QUERY_NOT_FOUND"
        registration = post(url, {"query": other, "extensions": extension(other)})
        assert code(registration) == "PERSISTED_QUERY_REQUIRED"
        assert code(post(url, {"extensions": extension(other)})) == "PERSISTED_QUERY_NOT_FOUND"
        assert calls.total() == 0
        # the full text of a persisted document with its hash runs too
        assert post(url, {"query": allowed, "extensions": extension(allowed)}).status_code == 200


def test_bff_persist_registers_a_folder_that_persisted_only_replicas_accept(
    tmp_path: Path, shop: RunningServices, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "queries"
    (folder / "nested").mkdir(parents=True)
    documents = [
        f"query A {{ product(id: 4) {{ id }} }} # {uuid.uuid4().hex}\n",
        f"query B {{ users(ids: [1]) {{ id }} }} # {uuid.uuid4().hex}\n",
    ]
    (folder / "a.graphql").write_text(documents[0], encoding="utf-8")
    (folder / "nested" / "b.graphql").write_text(documents[1], encoding="utf-8")
    config = write_config(tmp_path / "bff.yaml", {"redis": {"url": REDIS_URL}})
    hashes = [sha256_hex(d) for d in documents]
    try:
        assert bff_main(["persist", str(folder), "--config", str(config)]) == 0
        printed = capsys.readouterr().out
        assert all(h in printed for h in hashes)
        assert "2 documents registered in Redis" in printed
        settings = gateway_settings(
            shop.urls, redis={"url": REDIS_URL}, persisted_queries={"only_persisted": True}
        )
        with running_gateway(settings) as one, running_gateway(settings) as two:
            first = post(one, {"extensions": extension(documents[0])})
            assert first.status_code == 200, first.text
            assert first.json()["data"] == {"product": {"id": "4"}}
            second = post(two, {"extensions": extension(documents[1])})
            assert second.json()["data"] == {"users": [{"id": "1"}]}
    finally:
        redis_delete(*(f"bff:pq:persisted:{{{h}}}" for h in hashes))


def test_bff_persist_refuses_an_invalid_document_and_can_write_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "queries"
    folder.mkdir()
    (folder / "bad.graphql").write_text("{ product(id: 1) { nope } }", encoding="utf-8")
    assert bff_main(["persist", str(folder), "--manifest", str(tmp_path / "m.json")]) == 1
    assert "bad.graphql: invalid against the schema" in capsys.readouterr().err
    (folder / "bad.graphql").write_text("{ product(id: 1) { id } }", encoding="utf-8")
    assert bff_main(["persist", str(folder), "--manifest", str(tmp_path / "m.json")]) == 0
    written = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert written == {sha256_hex("{ product(id: 1) { id } }"): "{ product(id: 1) { id } }"}
    # without a manifest and without redis.url there is nowhere to register
    assert (
        bff_main(["persist", str(folder), "--config", str(write_config(tmp_path / "c.yaml", {}))])
        == 1
    )
    assert "no shared store" in capsys.readouterr().err


def test_a_stale_manifest_stops_the_start(tmp_path: Path, shop: RunningServices) -> None:
    from bff.app import create_app
    from bff.config import ConfigError

    manifest = tmp_path / "stale.json"
    manifest.write_text(json.dumps({"0" * 64: "{ __typename }"}), encoding="utf-8")
    settings = gateway_settings(shop.urls, persisted_queries={"manifest": str(manifest)})
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    assert "persisted_queries.manifest" in str(refused.value)
    assert "not the sha256 of its document" in str(refused.value)


def test_check_config_reads_the_manifest_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_cli import EVERY_UPSTREAM, valid_config

    (tmp_path / "stale.json").write_text(json.dumps({"0" * 64: "{ x }"}), encoding="utf-8")
    config = valid_config(EVERY_UPSTREAM)
    config["persisted_queries"] = {"manifest": "stale.json"}  # relative to the config file
    path = write_config(tmp_path / "bff.yaml", config)
    assert bff_main(["check-config", str(path)]) == 1
    assert "persisted_queries.manifest" in capsys.readouterr().err
