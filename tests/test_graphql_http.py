"""GraphQL over HTTP (the GraphQL-over-HTTP draft): media types, methods, request errors.

Under `application/graphql-response+json` a request error (syntax, validation, variables,
operation selection) is a 400 with no `data`; under the legacy `application/json` the same
well-formed request is answered 200. A request that is not a GraphQL request at all is a 4xx
under either. Every error carries `extensions.code`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from services import RunningServices, shop_data
from tests.support import GraphQLClient, UpstreamCalls, gateway_settings, running_gateway, sign

DATA = shop_data(42)
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PRODUCT = "query Product($id: ID!) { product(id: $id) { id name } }"
ADD_REVIEW = 'mutation Review { addReview(input: {productId: 1, rating: 4, body: "ok"}) { id } }'


@pytest.fixture(scope="module")
def locked(shop: RunningServices) -> Iterator[httpx.Client]:
    """A gateway with GraphiQL and introspection turned off."""
    settings = gateway_settings(shop.urls, server={"graphiql": False, "introspection": False})
    with (
        running_gateway(settings) as url,
        httpx.Client(base_url=url, timeout=10, trust_env=False) as client,
    ):
        yield client


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


def post(
    http: httpx.Client, body: Any, accept: str | None = GRAPHQL_RESPONSE, **kw: Any
) -> httpx.Response:
    """POST `body` as JSON (even when it is not an object, or null)."""
    headers = {"Content-Type": JSON} if accept is None else {"Content-Type": JSON, "Accept": accept}
    return http.post("/graphql", content=json.dumps(body), headers=headers, **kw)


def checked_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The response's errors, each of which must be a GraphQL error with a code."""
    body = response.json()
    errors = body["errors"]
    assert errors, body
    for error in errors:
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["extensions"]["code"], str)
    return errors


def assert_request_error(
    response: httpx.Response, status: int, media: str = GRAPHQL_RESPONSE
) -> list[dict[str, Any]]:
    """A request error: the status, the media type, no `data`, coded errors."""
    assert response.status_code == status, response.text
    assert media_type(response) == media
    assert "data" not in response.json()
    return checked_errors(response)


# --- media types ------------------------------------------------------------------------------


def test_post_json_answers_graphql_response_json(gql: GraphQLClient) -> None:
    response = gql.post(PRODUCT, {"id": "1"})
    assert response.status_code == 200
    assert media_type(response) == GRAPHQL_RESPONSE
    assert response.json() == {
        "data": {"product": {"id": "1", "name": DATA.products[1]["name"]}},
        "extensions": {"cost": 3},
    }


def test_accept_application_json_gets_application_json(gql: GraphQLClient) -> None:
    response = post(gql.http, {"query": "{ __typename }"}, accept=JSON)
    assert response.status_code == 200
    assert media_type(response) == JSON
    assert response.json() == {"data": {"__typename": "Query"}, "extensions": {"cost": 1}}


def test_no_accept_header_gets_legacy_json(gql: GraphQLClient) -> None:
    """The spec's SHOULD for legacy clients: no Accept is treated as `application/json`."""
    request = gql.http.build_request("POST", "/graphql", json={"query": "{ __typename }"})
    del request.headers["accept"]
    response = gql.http.send(request)
    assert response.status_code == 200
    assert media_type(response) == JSON


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_a_legacy_client_gets_request_errors_with_200(
    accept: str | None, gql: GraphQLClient
) -> None:
    response = post(gql.http, {"query": "{ nope }"}, accept=accept)
    assert_request_error(response, 200, JSON)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("*/*", JSON),
        ("application/*", JSON),
        (f"{GRAPHQL_RESPONSE}, */*;q=0.5", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", JSON),
        (f"{JSON};q=0.9, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"text/plain, {JSON}", JSON),
        (f"{GRAPHQL_RESPONSE};q=0, {JSON}", JSON),
    ],
)
def test_accept_negotiation(accept: str, expected: str, gql: GraphQLClient) -> None:
    response = post(gql.http, {"query": "{ __typename }"}, accept=accept)
    assert response.status_code == 200, response.text
    assert media_type(response) == expected


@pytest.mark.parametrize("accept", ["text/plain", "application/xml", f"{JSON};q=0"])
def test_an_unacceptable_accept_header_is_406(
    accept: str, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = post(gql.http, {"query": "{ product(id: 1) { id } }"}, accept=accept)
    assert response.status_code == 406
    checked_errors(response)
    assert calls.total() == 0


# --- GET ---------------------------------------------------------------------------------------


def test_get_with_a_query_string(gql: GraphQLClient) -> None:
    response = gql.http.get(
        "/graphql", params={"query": "{ product(id: 2) { id } }"}, headers={"Accept": "*/*"}
    )
    assert response.status_code == 200
    assert media_type(response) == JSON
    assert response.json() == {"data": {"product": {"id": "2"}}, "extensions": {"cost": 2}}


def test_get_with_variables_and_operation_name(gql: GraphQLClient) -> None:
    document = PRODUCT + " query Other { __typename }"
    params = {"query": document, "variables": json.dumps({"id": "3"}), "operationName": "Product"}
    response = gql.http.get("/graphql", params=params, headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["product"]["id"] == "3"


def test_get_with_variables_that_are_not_json_is_400(gql: GraphQLClient) -> None:
    params = {"query": PRODUCT, "variables": "{not json"}
    response = gql.http.get("/graphql", params=params, headers={"Accept": GRAPHQL_RESPONSE})
    assert_request_error(response, 400)


def test_get_with_a_token_sees_the_principal(gql: GraphQLClient) -> None:
    response = gql.http.get(
        "/graphql",
        params={"query": "{ me { id } }"},
        headers={"Authorization": f"Bearer {sign('2', [])}"},
    )
    assert response.json() == {"data": {"me": {"id": "2"}}, "extensions": {"cost": 2}}


def test_get_of_a_mutation_is_405_and_runs_nothing(
    gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = gql.http.get(
        "/graphql",
        params={"query": ADD_REVIEW},
        headers={"Accept": GRAPHQL_RESPONSE, "Authorization": f"Bearer {sign()}"},
    )
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    checked_errors(response)
    assert calls.total() == 0


def test_get_of_a_query_in_a_document_with_a_mutation_is_allowed(gql: GraphQLClient) -> None:
    params = {"query": ADD_REVIEW + " query Q { __typename }", "operationName": "Q"}
    response = gql.http.get("/graphql", params=params)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}, "extensions": {"cost": 1}}


def test_get_without_a_query_is_400(gql: GraphQLClient) -> None:
    response = gql.http.get("/graphql", headers={"Accept": GRAPHQL_RESPONSE})
    assert_request_error(response, 400)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(method: str, gql: GraphQLClient) -> None:
    response = gql.http.request(method, "/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    assert media_type(response) == JSON
    assert [e["extensions"]["code"] for e in checked_errors(response)] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("path", ["/nope", "/graphiql/static/nope.js", "/graphql/extra"])
def test_an_unknown_path_is_a_coded_404(path: str, gql: GraphQLClient) -> None:
    """Even the router's own refusals carry the gateway's error body, and the request id."""
    response = gql.http.get(path, headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 404
    assert media_type(response) == GRAPHQL_RESPONSE
    assert [e["extensions"]["code"] for e in checked_errors(response)] == ["NOT_FOUND"]
    assert response.headers["x-request-id"]


# --- malformed POST requests --------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_post_with_a_non_json_content_type_is_415(
    content_type: str, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = gql.http.post(
        "/graphql",
        content=json.dumps({"query": "{ product(id: 1) { id } }"}),
        headers={"Content-Type": content_type, "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 415
    checked_errors(response)
    assert calls.total() == 0


def test_post_json_with_a_charset_is_accepted(gql: GraphQLClient) -> None:
    response = gql.http.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }"}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}, "extensions": {"cost": 1}}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_invalid_json_is_400(accept: str, gql: GraphQLClient) -> None:
    response = gql.http.post(
        "/graphql",
        content=b'{"query": "{ __typename }"',
        headers={"Content-Type": JSON, "Accept": accept},
    )
    assert_request_error(response, 400, accept)


MALFORMED = {
    "list_body": [{"query": "{ __typename }"}],
    "string_body": "{ __typename }",
    "null_body": None,
    "no_query": {"variables": {}},
    "empty_query": {"query": "   "},
    "query_not_a_string": {"query": {"kind": "Document"}},
    "query_a_number": {"query": 7},
    "variables_a_list": {"query": "{ __typename }", "variables": [1, 2]},
    "variables_a_string": {"query": "{ __typename }", "variables": "x"},
    "operation_name_a_number": {"query": "{ __typename }", "operationName": 3},
    "extensions_a_list": {"query": "{ __typename }", "extensions": []},
}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_body_that_is_not_a_graphql_request_is_400(
    body: Any, accept: str, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    response = post(gql.http, body, accept=accept)
    errors = assert_request_error(response, 400, accept)
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert calls.total() == 0


def test_null_variables_and_operation_name_are_allowed(gql: GraphQLClient) -> None:
    body = {"query": "{ __typename }", "variables": None, "operationName": None}
    assert post(gql.http, body).json() == {
        "data": {"__typename": "Query"},
        "extensions": {"cost": 1},
    }


# --- request errors: 400 under graphql-response+json, 200 under application/json ----------------

REQUEST_ERRORS = {
    "syntax": ({"query": "{ product(id: 1) { id "}, "Syntax Error"),
    "unknown_field": ({"query": "{ product(id: 1) { colour } }"}, "colour"),
    "unknown_argument": ({"query": "{ product(pid: 1) { id } }"}, "pid"),
    "missing_selection": ({"query": "{ product(id: 1) }"}, "product"),
    "literal_of_wrong_type": ({"query": '{ products(first: "many") { totalCount } }'}, "Int"),
    "variable_of_wrong_type": ({"query": PRODUCT, "variables": {"id": {"a": 1}}}, "$id"),
    "variable_not_an_int": (
        {
            "query": "query($n: Int) { products(first: $n) { totalCount } }",
            "variables": {"n": "abc"},
        },
        "$n",
    ),
    "missing_required_variable": ({"query": PRODUCT, "variables": {}}, "$id"),
    "several_operations_unnamed": (
        {"query": "query A { __typename } query B { __typename }"},
        "operation",
    ),
    "unknown_operation_name": ({"query": PRODUCT, "operationName": "Nope"}, "Nope"),
}


@pytest.mark.parametrize(("body", "needle"), REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
def test_request_errors_are_400_under_graphql_response_json(
    body: dict[str, Any], needle: str, gql: GraphQLClient, calls: UpstreamCalls
) -> None:
    errors = assert_request_error(post(gql.http, body), 400)
    assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in errors), errors
    assert any(needle in e["message"] for e in errors), errors
    assert calls.total() == 0


@pytest.mark.parametrize(("body", "needle"), REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
def test_request_errors_are_200_under_application_json(
    body: dict[str, Any], needle: str, gql: GraphQLClient
) -> None:
    errors = assert_request_error(post(gql.http, body, accept=JSON), 200, JSON)
    assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in errors), errors
    assert any(needle in e["message"] for e in errors), errors


def test_a_syntax_error_has_a_location(gql: GraphQLClient) -> None:
    errors = assert_request_error(post(gql.http, {"query": "{ product(id: 1) { id "}), 400)
    assert errors[0]["locations"][0]["line"] == 1


def test_the_named_operation_runs(gql: GraphQLClient) -> None:
    body = {
        "query": "query A { product(id: 1) { id } } query B { product(id: 2) { id } }",
        "operationName": "B",
    }
    assert post(gql.http, body).json() == {
        "data": {"product": {"id": "2"}},
        "extensions": {"cost": 2},
    }


# --- field errors: 200 with data ----------------------------------------------------------------


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_field_errors_are_200_with_partial_data(accept: str, gql: GraphQLClient) -> None:
    response = post(gql.http, {"query": "{ me { id } product(id: 1) { id } }"}, accept=accept)
    assert response.status_code == 200
    assert media_type(response) == accept
    body = response.json()
    assert body["data"] == {"me": None, "product": {"id": "1"}}
    errors = checked_errors(response)
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
    assert errors[0]["path"] == ["me"]


def test_a_null_root_with_a_field_error_is_still_200(gql: GraphQLClient) -> None:
    response = post(gql.http, {"query": "{ orders { totalCount } }"})
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert [e["extensions"]["code"] for e in checked_errors(response)] == ["UNAUTHENTICATED"]


# --- GraphiQL -----------------------------------------------------------------------------------


class AssetRefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_a_browser_gets_graphiql_served_from_the_gateway(gql: GraphQLClient) -> None:
    page = gql.http.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert media_type(page) == "text/html"
    assert page.headers["cache-control"] == "no-store"
    assert "query Dashboard" in page.text
    refs = AssetRefs()
    refs.feed(page.text)
    assert len(refs.urls) >= 4, refs.urls
    for url in refs.urls:
        assert url.startswith("/"), f"{url} is not served by the gateway"
        asset = gql.http.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def test_graphiql_assets_need_no_token(gql: GraphQLClient) -> None:
    page = gql.http.get("/graphql", headers={"Accept": "text/html"})
    refs = AssetRefs()
    refs.feed(page.text)
    asset = gql.http.get(refs.urls[0], headers={"Authorization": "Bearer garbage"})
    assert asset.status_code == 200


def test_a_graphql_get_is_not_served_html(gql: GraphQLClient) -> None:
    response = gql.http.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Accept": "*/*"}
    )
    assert media_type(response) == JSON


def test_graphiql_off_serves_no_html(locked: httpx.Client) -> None:
    response = locked.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert media_type(response) != "text/html"
    assert "<html" not in response.text.lower()
    assert response.status_code >= 400
    html_only = locked.get("/graphql", headers={"Accept": "text/html"})
    assert "<html" not in html_only.text.lower()
    assert html_only.status_code >= 400


def test_graphiql_off_still_answers_graphql(locked: httpx.Client) -> None:
    response = post(locked, {"query": "{ product(id: 1) { id } }"})
    assert response.json() == {"data": {"product": {"id": "1"}}, "extensions": {"cost": 2}}


# --- introspection ------------------------------------------------------------------------------

INTROSPECTION = "{ __schema { queryType { name } mutationType { name } } }"


def test_introspection_is_on_by_default(gql: GraphQLClient) -> None:
    data = gql.data(INTROSPECTION)
    assert data == {
        "__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}
    }
    product = gql.data('{ __type(name: "Product") { fields { name } } }')["__type"]
    assert "averageRating" in {f["name"] for f in product["fields"]}


@pytest.mark.parametrize(
    "query", [INTROSPECTION, '{ __type(name: "Product") { name } }'], ids=["schema", "type"]
)
def test_introspection_off_rejects_schema_queries(query: str, locked: httpx.Client) -> None:
    errors = assert_request_error(post(locked, {"query": query}), 400)
    assert any("introspection" in e["message"].lower() for e in errors), errors
    assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in errors)


def test_introspection_off_still_allows_typename(locked: httpx.Client) -> None:
    assert post(locked, {"query": "{ __typename }"}).json() == {
        "data": {"__typename": "Query"},
        "extensions": {"cost": 1},
    }
