"""`GET /openapi.json` and `GET /docs`: the gateway's REST surface, described (SPEC section 13).

The document (`bff.http.openapi_document`) is built once from the settings at start-up and
served as the same bytes to every request. `/docs` is Swagger UI from the gateway's own copy
of swagger-ui-dist (`bff/static/docs/`), like GraphiQL's assets: nothing is loaded from the
internet, and the spec validator that Swagger UI would otherwise call out to is off.
`server.docs: false` removes all three routes (`/openapi.json`, `/docs`, `/docs/static`).
"""

from __future__ import annotations

import html
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bff.config import Settings
from bff.http.openapi_document import openapi_document

__all__ = [
    "DOCS_ASSETS",
    "DOCS_STATIC_DIR",
    "docs_html",
    "docs_routes",
    "openapi_document",
]

DOCS_STATIC_DIR: Path = Path(__file__).resolve().parent.parent / "static" / "docs"
DOCS_PREFIX = "/docs/static"
#: Asset files the page references, relative to its static prefix.
DOCS_ASSETS: tuple[str, ...] = ("swagger-ui.css", "swagger-ui-bundle.js")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>bff gateway: REST API</title>
<link rel="stylesheet" href="{prefix}/swagger-ui.css">
</head>
<body>
<div id="docs">Loading the API description&hellip;</div>
<noscript>This page needs JavaScript; the document itself is at {spec}.</noscript>
<script src="{prefix}/swagger-ui-bundle.js"></script>
<script>
(function () {{
  "use strict";
  SwaggerUIBundle({{
    url: {spec_js},
    dom_id: "#docs",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
    // A passthrough path spans segments: send its slashes as slashes, not as %2F.
    requestInterceptor: function (request) {{
      var query = request.url.indexOf("?");
      var path = query < 0 ? request.url : request.url.slice(0, query);
      var rest = query < 0 ? "" : request.url.slice(query);
      var at = path.indexOf("/api/");
      if (at >= 0) {{
        request.url = path.slice(0, at) + path.slice(at).replace(/%2F/gi, "/") + rest;
      }}
      return request;
    }}
  }});
}})();
</script>
</body>
</html>
"""


def docs_html(spec_url: str = "/openapi.json", static_prefix: str = DOCS_PREFIX) -> str:
    """The `/docs` page: Swagger UI over `spec_url`, its assets under `static_prefix`."""
    prefix = html.escape(static_prefix.rstrip("/"), quote=True)
    spec_js = orjson.dumps(spec_url).decode().replace("<", "\\u003c").replace(">", "\\u003e")
    return _PAGE.format(prefix=prefix, spec=html.escape(spec_url), spec_js=spec_js)


def docs_routes(settings: Settings) -> list[BaseRoute]:
    """`/openapi.json`, `/docs` and its assets, or nothing with `server.docs: false`."""
    if not settings.server.docs:
        return []
    document = orjson.dumps(openapi_document(settings))
    page = docs_html()

    async def openapi_json(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Mount(DOCS_PREFIX, app=StaticFiles(directory=DOCS_STATIC_DIR), name="docs-static"),
    ]
