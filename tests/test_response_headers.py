"""The response header policy: the GraphQL response's `Cache-Control` and passed fields.

Unit tests pin the rules (`UsedAnswers`, `freshness`); the gateway tests run over sample
services that send `Cache-Control` and `Set-Cookie` of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from bff.config import ConfigError, settings_from_dict
from bff.upstream.cache_control import Freshness, freshness
from bff.upstream.header_policy import UsedAnswers
from services import RunningServices, ServiceOptions, ServiceSpec
from tests.support import (
    AUDIENCE,
    ISSUER,
    SECRET,
    GraphQLClient,
    running_gateway,
    running_shop,
    sign,
)

PRODUCT = "{ product(id: 3) { id name } }"
PRODUCT_AND_USER = "{ product(id: 3) { id name } user(id: 2) { id name } }"


def fresh(value: str | None, ttl: float | None = None, age: int | None = None) -> Freshness:
    headers = {} if value is None else {"cache-control": value}
    if age is not None:
        headers["age"] = str(age)
    return freshness(headers, ttl)


def test_freshness_reads_max_age_s_maxage_private_no_store_and_age() -> None:
    assert fresh("max-age=60") == Freshness(60, 60)
    assert fresh("max-age=60, s-maxage=300") == Freshness(60, 300)  # s-maxage: the gateway's
    assert fresh("private, max-age=60, s-maxage=300") == Freshness(60, 60, private=True)
    assert fresh("max-age=60", age=50) == Freshness(10, 10)
    assert fresh("max-age=60", age=90) == Freshness(0, 0)
    assert not fresh("no-store, max-age=60").storable
    assert not fresh("no-cache").storable
    assert not fresh("public").storable  # no freshness given and no ttl
    assert fresh("public", ttl=30) == Freshness(30, 30)
    assert not fresh(None).storable
    assert fresh(None, ttl=15) == Freshness(15, 15)


def answer(value: str | None, ttl: float | None = None) -> tuple[Mapping[str, str], Freshness]:
    headers = {} if value is None else {"cache-control": value}
    return headers, freshness(headers, ttl)


def policy(*values: str | None, errors: bool = False, mutation: bool = False) -> str:
    used = UsedAnswers(mutation=mutation)
    for value in values:
        used.record(*answer(value))
    return used.cache_control(errors=errors)


def test_the_most_restrictive_cache_control_wins() -> None:
    assert policy("max-age=60", "max-age=30") == "max-age=30"
    assert policy("max-age=60", "private, max-age=90") == "private, max-age=60"
    assert policy("max-age=60", "no-store", "private, max-age=5") == "no-store"
    assert policy("max-age=60", None) == "no-store"  # no header, no ttl: no-store


def test_errors_mutations_and_no_answer_are_no_store() -> None:
    assert policy("max-age=60", errors=True) == "no-store"
    assert policy("max-age=60", mutation=True) == "no-store"
    assert policy() == "no-store"


def test_an_upstream_ttl_stands_for_a_missing_cache_control() -> None:
    used = UsedAnswers()
    used.record(*answer(None, ttl=20))
    used.record(*answer("max-age=60"))
    assert used.cache_control() == "max-age=20"


def test_passed_fields_keep_every_set_cookie_and_other_fields_once() -> None:
    used = UsedAnswers()
    passed = frozenset({"set-cookie", "x-served-by"})
    for n in (1, 2):
        values = {"set-cookie": [f"a{n}=1", f"b{n}=2"], "x-served-by": [f"node{n}"]}
        used.record(*answer("max-age=60"), passed, values=values)
    used.record(*answer("max-age=60"), passed, cookies=False, values={"set-cookie": ["c=3"]})
    assert used.response_headers() == [
        ("cache-control", "max-age=60"),
        ("set-cookie", "a1=1"),
        ("set-cookie", "b1=2"),
        ("x-served-by", "node1"),
        ("set-cookie", "a2=1"),
        ("set-cookie", "b2=2"),
    ]


# --- through the gateway ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningServices]:
    catalog = ServiceOptions(cache_control="max-age=60", set_cookie="catalog=1; Path=/")
    users = ServiceOptions(cache_control="private, max-age=30", set_cookie="users=2; Path=/")
    with running_shop(
        ServiceSpec("catalog", options=catalog), ServiceSpec("users", options=users)
    ) as running:
        yield running


def settings(shop: RunningServices, **per_upstream: Mapping[str, Any]) -> Any:
    upstreams = {
        name: {"instances": [{"url": u} for u in urls], **per_upstream.get(name, {})}
        for name, urls in shop.urls.items()
    }
    return settings_from_dict(
        {
            "upstreams": upstreams,
            "auth": {"issuer": ISSUER, "audience": AUDIENCE, "jwt": {"secret": SECRET}},
            "rate_limits": {"enabled": False},
        }
    )


def ask(url: str, query: str, **kw: Any) -> httpx.Response:
    client = GraphQLClient(url)
    try:
        response = client.post(query, **kw)
    finally:
        client.close()
    assert response.status_code == 200, response.text
    return response


def test_the_response_carries_the_upstreams_cache_control(shop: RunningServices) -> None:
    with running_gateway(settings(shop)) as url:
        alone = ask(url, PRODUCT)
        both = ask(url, PRODUCT_AND_USER, token=sign("2"))
        failed = ask(url, "{ product(id: 3) { id } order(id: 1) { id } }")  # order: no token
    assert "errors" not in alone.json()
    assert alone.headers["cache-control"] == "max-age=60"
    assert "errors" not in both.json()
    assert both.headers["cache-control"] == "private, max-age=30"
    assert "errors" in failed.json()
    assert failed.headers["cache-control"] == "no-store"


def test_an_upstream_without_cache_control_is_no_store_unless_it_sets_a_ttl(
    shop: RunningServices,
) -> None:
    query = "{ product(id: 3) { id stock } }"  # inventory sends no Cache-Control
    with running_gateway(settings(shop)) as url:
        plain = ask(url, query)
    with running_gateway(settings(shop, inventory={"cache": {"ttl": "20s"}})) as url:
        with_ttl = ask(url, query)
    assert plain.headers["cache-control"] == "no-store"
    assert with_ttl.headers["cache-control"] == "max-age=20"


def test_a_mutation_is_no_store(shop: RunningServices) -> None:
    mutation = 'mutation { addReview(input: {productId: 3, rating: 5, body: "good"}) { id } }'
    with running_gateway(settings(shop)) as url:
        response = ask(url, mutation, token=sign("2"))
    assert "errors" not in response.json(), response.json()
    assert response.headers["cache-control"] == "no-store"


def test_set_cookie_reaches_the_client_only_when_named(shop: RunningServices) -> None:
    with running_gateway(settings(shop)) as url:
        default = ask(url, PRODUCT_AND_USER, token=sign("2"))
    named = {"response_headers": ["Set-Cookie"]}
    with running_gateway(settings(shop, catalog=named, users=named)) as url:
        passed = ask(url, PRODUCT_AND_USER, token=sign("2"))
    assert default.headers.get_list("set-cookie") == []
    assert sorted(passed.headers.get_list("set-cookie")) == ["catalog=1; Path=/", "users=2; Path=/"]


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Cache-Control", "a b"])
def test_a_header_the_gateway_owns_cannot_be_passed(name: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_dict(
            {
                "upstreams": {
                    "catalog": {
                        "instances": [{"url": "http://127.0.0.1:1"}],
                        "response_headers": [name],
                    }
                }
            }
        )
    assert "upstreams.catalog.response_headers" in str(error.value)
