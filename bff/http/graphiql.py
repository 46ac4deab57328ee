"""GraphiQL served from the gateway's own static assets.

The page produced by :func:`graphiql_html` loads React, ReactDOM and the GraphiQL UMD
bundle from ``static_prefix`` (see :func:`static_app`), never from a CDN, so the IDE works
on machines with no internet access.

Bundled versions (see ``bff/static/graphiql/README.md``): graphiql 3.9.0, react 18.3.1,
react-dom 18.3.1.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles

__all__ = [
    "DEFAULT_QUERY",
    "GRAPHIQL_ACCEPT",
    "GRAPHIQL_ASSETS",
    "GRAPHIQL_STATIC_DIR",
    "graphiql_html",
    "static_app",
    "wants_graphiql",
]

GRAPHIQL_STATIC_DIR: Path = Path(__file__).resolve().parent.parent / "static" / "graphiql"

#: Accept header the in-browser fetcher sends with every GraphQL request.
GRAPHIQL_ACCEPT = "application/graphql-response+json, application/json"

#: The query a fresh editor opens with: the Dashboard, the gateway's reference query, and
#: where its token goes (`orders` needs one; `bff serve` does not prefill it as the demo does).
DEFAULT_QUERY = """# Needs a token: get one from POST /auth/token
# (or the login mutation), then in Headers below:
# {"Authorization": "Bearer <access_token>"}
query Dashboard {
  orders(first: 20) {
    nodes { id status total
      user { id name }
      items { quantity product { id name price stock averageRating } }
    }
  }
}"""

#: Asset files the page references, relative to ``static_prefix``, in load order.
GRAPHIQL_ASSETS: tuple[str, ...] = (
    "graphiql.min.css",
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
)

# Characters that must not appear literally inside an inline <script> block: "<" and ">"
# (</script>, <!--), "&" (for good measure) and the JS line terminators U+2028/U+2029.
_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _script_json(value: Any) -> str:
    """JSON-encode ``value`` so it is safe to embed as a literal inside ``<script>``."""
    encoded = json.dumps(value, ensure_ascii=False)
    return "".join(_SCRIPT_ESCAPES.get(ch, ch) for ch in encoded)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>GraphiQL</title>
<link rel="stylesheet" href="{prefix}/graphiql.min.css">
<style>
html, body {{ height: 100%; margin: 0; overflow: hidden; }}
#graphiql {{ height: 100vh; }}
</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL&hellip;</div>
<noscript>GraphiQL needs JavaScript.</noscript>
<script src="{prefix}/react.production.min.js"></script>
<script src="{prefix}/react-dom.production.min.js"></script>
<script src="{prefix}/graphiql.min.js"></script>
<script>
(function () {{
  "use strict";
  var config = {config};
  var fetcher = GraphiQL.createFetcher({{
    url: config.endpoint,
    headers: {{ accept: config.accept }},
    enableIncrementalDelivery: false
  }});
  var props = {{
    fetcher: fetcher,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false
  }};
  if (config.defaultQuery !== null) {{
    props.defaultQuery = config.defaultQuery;
  }}
  if (config.defaultHeaders !== null) {{
    props.defaultHeaders = config.defaultHeaders;
  }}
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, props)
  );
}})();
</script>
</body>
</html>
"""


def graphiql_html(
    endpoint: str = "/graphql",
    static_prefix: str = "/graphiql/static",
    default_query: str | None = DEFAULT_QUERY,
    default_headers: Mapping[str, str] | None = None,
) -> str:
    """Return the GraphiQL HTML page.

    ``endpoint`` is the GraphQL URL the IDE POSTs to, ``static_prefix`` the URL path where
    :func:`static_app` is mounted, and ``default_query`` an optional query shown in a fresh
    editor (the Dashboard by default). The header editor is enabled and starts with
    ``default_headers`` when given (``bff demo`` fills in its token as
    ``{"Authorization": "Bearer ..."}``); headers are not persisted to the browser's local
    storage, so tokens do not linger.
    """
    prefix = html.escape(static_prefix.rstrip("/"), quote=True)
    config = {
        "endpoint": endpoint,
        "accept": GRAPHIQL_ACCEPT,
        "defaultQuery": default_query,
        "defaultHeaders": None if not default_headers else json.dumps(default_headers, indent=2),
    }
    return _PAGE.format(prefix=prefix, config=_script_json(config))


def wants_graphiql(accept_header: str | None) -> bool:
    """True when the Accept header asks for HTML (a browser navigating to the endpoint).

    A ``text/html`` media range with ``q=0`` (explicitly refused) does not count, and
    neither does a bare ``*/*``: API clients such as curl must keep getting JSON.
    """
    if not accept_header:
        return False
    for media_range in accept_header.split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != "text/html":
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def static_app() -> StaticFiles:
    """An ASGI app serving the bundled GraphiQL assets (mount it at ``static_prefix``)."""
    return StaticFiles(directory=GRAPHIQL_STATIC_DIR)
