"""One way to render a `BffError` as an HTTP response, for every stage and route."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from bff.errors import BffError, error_body
from bff.graphql.protocol import JSON, MalformedRequest, negotiate


def error_response(error: BffError, accept: str | None = None) -> Response:
    """`{"errors": [...]}` with the error's status, in the media type the client accepts."""
    try:
        media_type = negotiate(accept)
    except MalformedRequest:
        media_type = JSON
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    body = orjson.dumps({"errors": [error_body(error)]})
    return Response(body, error.status, headers=headers, media_type=media_type)
