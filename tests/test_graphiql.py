"""GraphiQL page and its bundled, offline static assets."""

from __future__ import annotations

import asyncio
import json
import re
from html.parser import HTMLParser

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from bff.http.graphiql import (
    DEFAULT_QUERY,
    GRAPHIQL_ACCEPT,
    GRAPHIQL_ASSETS,
    GRAPHIQL_STATIC_DIR,
    graphiql_html,
    static_app,
    wants_graphiql,
)

STATIC_PREFIX = "/graphiql/static"


class _AssetRefs(HTMLParser):
    """Collects src/href attribute values and inline script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) is not None:
                self.urls.append(values[name] or "")
        self._in_inline_script = tag == "script" and "src" not in values

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts.append(data)


def _parse(page: str) -> _AssetRefs:
    parser = _AssetRefs()
    parser.feed(page)
    parser.close()
    return parser


def _config(page: str) -> dict[str, object]:
    """The JSON config literal embedded in the page's inline script."""
    match = re.search(r"var config = (\{.*?\});\n", page)
    assert match is not None
    return json.loads(match.group(1))


async def _page(request: Request) -> HTMLResponse:
    return HTMLResponse(graphiql_html(static_prefix=STATIC_PREFIX))


APP = Starlette(
    routes=[
        Route("/graphiql", _page),
        Mount(STATIC_PREFIX, app=static_app(), name="graphiql-static"),
    ]
)


def _get(*paths: str) -> list[httpx.Response]:
    """GET each path from the test app in-process (no network, no server)."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(run())


def test_static_dir_ships_assets_and_licenses() -> None:
    assert GRAPHIQL_STATIC_DIR.is_dir()
    for name in GRAPHIQL_ASSETS:
        assert (GRAPHIQL_STATIC_DIR / name).stat().st_size > 1000, name
    for license_file in ("LICENSE.graphiql.txt", "LICENSE.react.txt", "LICENSE.react-dom.txt"):
        assert "MIT License" in (GRAPHIQL_STATIC_DIR / license_file).read_text()
    total = sum(p.stat().st_size for p in GRAPHIQL_STATIC_DIR.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024


def test_page_references_only_local_assets() -> None:
    (response,) = _get("/graphiql")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "http://" not in page
    assert "https://" not in page
    urls = _parse(page).urls
    assert all(u.startswith("/") and not u.startswith("//") for u in urls)
    assert sorted(urls) == sorted(f"{STATIC_PREFIX}/{name}" for name in GRAPHIQL_ASSETS)
    # React must load before ReactDOM, and both before the GraphiQL UMD bundle.
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts == [
        f"{STATIC_PREFIX}/{name}" for name in GRAPHIQL_ASSETS if name.endswith(".js")
    ]


def test_referenced_assets_are_served() -> None:
    (page,) = _get("/graphiql")
    urls = _parse(page.text).urls
    assert urls
    for url, response in zip(urls, _get(*urls), strict=True):
        assert response.status_code == 200, url
        content_type = response.headers["content-type"]
        if url.endswith(".css"):
            assert content_type.startswith("text/css"), (url, content_type)
        else:
            assert content_type.split(";")[0] in {
                "text/javascript",
                "application/javascript",
                "application/x-javascript",
            }, (url, content_type)
        assert len(response.content) > 1000
        # The bundles themselves must not pull anything from the network either.
        if url.endswith(".css"):
            assert not re.search(r"url\(\s*['\"]?(https?:)?//", response.text)
            assert "@import" not in response.text


def test_umd_globals_match_page() -> None:
    bundle = (GRAPHIQL_STATIC_DIR / "graphiql.min.js").read_text(encoding="utf-8")
    assert ".GraphiQL=t(e.React,e.ReactDOM)" in bundle
    assert "createFetcher" in bundle
    react = (GRAPHIQL_STATIC_DIR / "react.production.min.js").read_text(encoding="utf-8")
    assert "c.React={}" in react
    react_dom = (GRAPHIQL_STATIC_DIR / "react-dom.production.min.js").read_text(encoding="utf-8")
    assert "Q.ReactDOM={},Q.React" in react_dom
    page = graphiql_html()
    assert "GraphiQL.createFetcher(" in page
    assert "ReactDOM.createRoot(" in page
    assert "React.createElement(GraphiQL" in page


def test_missing_asset_is_404() -> None:
    responses = _get(f"{STATIC_PREFIX}/nope.js", f"{STATIC_PREFIX}/%2e%2e/%2e%2e/http/graphiql.py")
    assert [r.status_code for r in responses] == [404, 404]


def test_page_config_defaults() -> None:
    page = graphiql_html()
    config = _config(page)
    assert config == {
        "endpoint": "/graphql",
        "accept": GRAPHIQL_ACCEPT,
        "defaultQuery": DEFAULT_QUERY,
        "defaultHeaders": None,
    }
    assert "\nquery Dashboard {" in DEFAULT_QUERY
    assert '# {"Authorization": "Bearer <access_token>"}' in DEFAULT_QUERY  # where it goes
    assert GRAPHIQL_ACCEPT == "application/graphql-response+json, application/json"
    assert "isHeadersEditorEnabled: true" in page
    assert "headers: { accept: config.accept }" in page
    assert 'href="/graphiql/static/graphiql.min.css"' in page


def test_default_headers_are_prefilled_and_escaped() -> None:
    headers = {"Authorization": "Bearer a.b.c</script><script>alert(1)</script>"}
    page = graphiql_html(default_headers=headers)
    assert "</script><script>alert(1)" not in page
    assert json.loads(str(_config(page)["defaultHeaders"])) == headers
    assert "props.defaultHeaders = config.defaultHeaders" in page


def test_custom_endpoint_and_prefix() -> None:
    page = graphiql_html(endpoint="/api/graphql", static_prefix="/assets/gql/")
    assert _config(page)["endpoint"] == "/api/graphql"
    urls = _parse(page).urls
    assert all(u.startswith("/assets/gql/") and "//" not in u for u in urls)


def test_default_query_is_escaped_against_script_injection() -> None:
    evil = '{ me { id } }\n# </script><script>alert("x")</script><!-- \u2028 & done'
    page = graphiql_html(default_query=evil)
    # Exactly the script tags the template has: nothing closed early, nothing injected.
    assert page.lower().count("</script>") == 4
    assert page.lower().count("<script") == 4
    assert "alert(" in page  # present, but only as inert data inside the JSON literal
    assert "<!--" not in page
    assert "\u2028" not in page
    inline = _parse(page).inline_scripts
    assert len(inline) == 1
    assert "</" not in inline[0]
    # The value round-trips exactly once decoded as JSON.
    assert _config(page)["defaultQuery"] == evil


def test_endpoint_and_prefix_cannot_break_out() -> None:
    page = graphiql_html(
        endpoint='/graphql"</script><script>alert(1)</script>',
        static_prefix='/s"><script>alert(2)</script>',
    )
    assert page.lower().count("<script") == 4
    assert _config(page)["endpoint"] == '/graphql"</script><script>alert(1)</script>'
    parsed = _parse(page)
    assert all(u.startswith('/s"><script>alert(2)</script>/') for u in parsed.urls)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/graphql-response+json, application/json", False),
        ("text/plain", False),
        ("text/htmlx", False),
        ("application/xhtml+xml", False),
        ("text/html", True),
        ("TEXT/HTML", True),
        ("text/html; charset=utf-8", True),
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
            True,
        ),
        ("application/json, text/html;q=0.1", True),
        ("text/html;q=0", False),
        ("text/html; q=0.0, application/json", False),
        ("text/html;q=bogus", False),
    ],
)
def test_wants_graphiql(accept: str | None, expected: bool) -> None:
    assert wants_graphiql(accept) is expected
