"""`GET /openapi.json` and `GET /docs` (SPEC section 13, "The REST surface described").

The document must be valid OpenAPI 3.1, list every REST endpoint and each configured
passthrough route with its methods and auth, and say what the running gateway really does:
an operation documented as public answers without a token, one with a security requirement
refuses an anonymous caller with 401.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from bff.config import settings_from_dict
from bff.http.openapi import DOCS_ASSETS, DOCS_STATIC_DIR, docs_html, openapi_document
from services import RunningServices
from tests.support import gateway_settings, running_gateway, sign

ROUTES = [
    {"name": "catalog", "upstream": "catalog", "methods": ["GET"], "auth": "public"},
    {
        "name": "orders",
        "upstream": "orders",
        "methods": ["GET", "POST"],
        "auth": {"scopes": ["orders:read"]},
    },
    {"name": "people", "upstream": "users", "methods": ["GET", "HEAD"], "auth": "authenticated"},
]
GATEWAY_PATHS = {
    "/auth/token",
    "/auth/refresh",
    "/auth/revoke",
    "/.well-known/jwks.json",
    "/admin/upstreams",
    "/admin/usage",
    "/healthz",
    "/readyz",
    "/metrics",
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def gateway(shop: RunningServices) -> Iterator[httpx.Client]:
    with (
        running_gateway(gateway_settings(shop.urls, routes=ROUTES)) as url,
        httpx.Client(base_url=url, timeout=10, trust_env=False) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def document(gateway: httpx.Client) -> dict[str, Any]:
    response = gateway.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = response.json()
    return data


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)  # raises on any violation of the 3.1 schema or its rules
    assert document["openapi"].startswith("3.1")


def test_it_lists_every_rest_endpoint_and_each_route(document: dict[str, Any]) -> None:
    routes = {f"/api/{r['name']}" for r in ROUTES} | {f"/api/{r['name']}/{{path}}" for r in ROUTES}
    assert set(document["paths"]) == GATEWAY_PATHS | routes


def test_each_route_has_its_methods_and_its_auth(document: dict[str, Any]) -> None:
    paths = document["paths"]
    security = {
        "catalog": [],
        "orders": [{"bearerAuth": ["orders:read"]}],
        "people": [{"bearerAuth": []}],
    }
    for route in ROUTES:
        for path in (f"/api/{route['name']}", f"/api/{route['name']}/{{path}}"):
            item = paths[path]
            assert set(item) & HTTP_METHODS == {m.lower() for m in route["methods"]}, path
            for method in route["methods"]:
                assert item[method.lower()]["security"] == security[route["name"]]
    assert "requestBody" in paths["/api/orders"]["post"]
    assert "requestBody" not in paths["/api/orders"]["get"]
    assert paths["/api/orders/{path}"]["get"]["parameters"][0]["name"] == "path"


def test_public_operations_answer_anonymous_callers(
    gateway: httpx.Client, document: dict[str, Any]
) -> None:
    gets = [p for p, m, op in operations(document) if m == "get" and op["security"] == []]
    assert {"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/api/catalog"} <= set(
        gets
    )
    for path in gets:
        url = path.replace("{path}", "products/1")
        status = gateway.get(url).status_code
        if path == "/api/catalog":  # the upstream's own root: its answer passes as it is
            assert status not in (401, 403), url
        else:
            assert status == 200, url


def test_secured_operations_refuse_anonymous_callers(
    gateway: httpx.Client, document: dict[str, Any]
) -> None:
    secured = [
        (p, m) for p, m, op in operations(document) if op["security"] and {} not in op["security"]
    ]
    assert ("/admin/upstreams", "get") in secured and ("/api/orders/{path}", "post") in secured
    for path, method in secured:
        url = path.replace("{path}", "orders")
        assert gateway.request(method.upper(), url).status_code == 401, (method, url)


def test_the_documented_scopes_are_the_ones_enforced(gateway: httpx.Client) -> None:
    without = {"Authorization": f"Bearer {sign(scopes=[])}"}
    with_scope = {"Authorization": f"Bearer {sign(scopes=['orders:read'])}"}
    assert gateway.get("/api/orders/orders", headers=without).status_code == 403
    assert gateway.get("/api/orders/orders", headers=with_scope).status_code == 200
    assert gateway.get("/api/people/users/1", headers=without).status_code == 200


def test_the_document_is_built_once_at_start_up(gateway: httpx.Client) -> None:
    first, second = gateway.get("/openapi.json"), gateway.get("/openapi.json")
    assert first.content == second.content


def test_admin_off_leaves_admin_upstreams_out() -> None:
    settings = settings_from_dict({"server": {"admin": False}})
    assert "/admin/upstreams" not in openapi_document(settings)["paths"]
    validate(openapi_document(settings))


def test_rate_limits_are_documented_where_they_apply() -> None:
    limited = openapi_document(settings_from_dict({}))["paths"]
    assert "429" in limited["/admin/usage"]["get"]["responses"]
    assert "429" not in limited["/healthz"]["get"]["responses"]  # an open path
    off = settings_from_dict({"rate_limits": {"enabled": False}})
    assert "429" not in openapi_document(off)["paths"]["/admin/usage"]["get"]["responses"]


def test_route_options_are_described() -> None:
    settings = settings_from_dict(
        {
            "upstreams": {"catalog": {"instances": [{"url": "http://127.0.0.1:9"}]}},
            "routes": [
                {"name": "v2", "upstream": "catalog", "auth": "public", "rewrite": "/v2/catalog"},
                {"name": "legacy", "upstream": "catalog", "strip_prefix": False},
                {"name": "all", "upstream": "catalog", "methods": ["PUT", "PATCH", "DELETE"]},
            ],
        }
    )
    document = openapi_document(settings)
    validate(document)
    paths = document["paths"]
    assert "`/v2/catalog/{path}`" in paths["/api/v2/{path}"]["get"]["description"]
    assert "`/api/legacy/{path}`" in paths["/api/legacy/{path}"]["get"]["description"]
    assert paths["/api/legacy"]["get"]["security"] == [{"bearerAuth": []}]  # the default auth
    assert set(paths["/api/all/{path}"]) == {"put", "patch", "delete"}
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value or "" for name, value in attrs if name in ("src", "href")]


def test_docs_page_uses_only_the_gateways_own_assets(gateway: httpx.Client) -> None:
    page = gateway.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = _Refs()
    refs.feed(page.text)
    assert refs.urls and all(url.startswith("/docs/static/") for url in refs.urls)
    assert {url.rsplit("/", 1)[1] for url in refs.urls} == set(DOCS_ASSETS)
    assert "validatorUrl: null" in page.text  # Swagger UI would otherwise call a public host
    assert '"/openapi.json"' in page.text
    assert not re.search(r"https?://", page.text)
    for url in refs.urls:
        asset = gateway.get(url)
        assert asset.status_code == 200 and len(asset.content) > 10_000, url
    bundle = gateway.get("/docs/static/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle
    assert gateway.get("/docs/static/nope.js").status_code == 404


def test_the_vendored_assets_ship_their_licenses() -> None:
    names = {path.name for path in DOCS_STATIC_DIR.iterdir()}
    assert set(DOCS_ASSETS) <= names
    assert {"LICENSE.swagger-ui.txt", "NOTICE.swagger-ui.txt", "README.md"} <= names
    assert "Apache License" in (DOCS_STATIC_DIR / "LICENSE.swagger-ui.txt").read_text()


def test_docs_page_escapes_its_urls() -> None:
    page = docs_html(spec_url="/x</script><script>alert(1)//", static_prefix='/s"><b>')
    assert "</script><script>alert" not in page
    assert '"><b>' not in page


def test_try_it_out_sends_a_passthrough_path_with_its_slashes() -> None:
    """Swagger UI escapes a path parameter's `/` as `%2F`, which the passthrough refuses (an
    encoded slash); the page's request interceptor puts the slashes back in the path only."""
    node = shutil.which("node")
    assert node is not None, "node is needed (scripts/test installs it for the suite)"
    match = re.search(
        r"requestInterceptor: (function \(request\) \{.*?\n    \})", docs_html(), re.S
    )
    assert match is not None
    urls = [
        "http://h/api/catalog/products%2F1?q=a%2Fb",
        "http://h/api/catalog/products%2F1",
        "http://h/auth/token",
    ]
    script = f"var f = {match.group(1)};\n" + "".join(
        f"console.log(f({{url: {json.dumps(url)}}}).url);\n" for url in urls
    )
    result = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.splitlines() == [
        "http://h/api/catalog/products/1?q=a%2Fb",
        "http://h/api/catalog/products/1",
        "http://h/auth/token",
    ]


@pytest.mark.parametrize(("docs", "graphiql"), [(False, True), (True, False)])
def test_server_docs_switches_both_independently_of_graphiql(
    shop: RunningServices, docs: bool, graphiql: bool
) -> None:
    settings = gateway_settings(shop.urls, server={"docs": docs, "graphiql": graphiql})
    with (
        running_gateway(settings) as url,
        httpx.Client(base_url=url, timeout=10, trust_env=False) as client,
    ):
        expected = 200 if docs else 404
        for path in ("/openapi.json", "/docs", "/docs/static/swagger-ui.css"):
            assert client.get(path).status_code == expected, path
        ide = client.get("/graphql", headers={"Accept": "text/html"})
        assert ("<title>GraphiQL</title>" in ide.text) is graphiql
