"""One upstream call of an operation: the request from GraphQL arguments, the answer to a value.

Path parameters are percent-escaped into the path, query parameters go into the query string
(a list comma-joined, as the sample services' `?ids=`; booleans as `true`/`false`), the
`input` argument is the JSON body. The caller's `X-User-Id`/`X-User-Scopes` and the source's
`headers` go with every call.

Answers (SPEC section 12): a 2xx JSON answer is the value, decoded into records by the
operation's decoder (`bff.sources.records`; 204 or an empty body: null). A 404
is `None` for a query field of object type, `NotFound` otherwise; any other 4xx is
`BadUserInput`; a 5xx `UpstreamUnavailable`. Both keep the upstream's short `detail` or
`message`. Time-outs and refused connections are the pool's `UpstreamTimeout` and
`UpstreamUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from bff.errors import BadUpstreamResponse, BadUserInput, NotFound, UpstreamUnavailable
from bff.int_text import INT_TEXT
from bff.upstream import UpstreamPool, UpstreamResponse

MAX_DETAIL = 200


@dataclass(frozen=True, slots=True)
class Argument:
    """Where a GraphQL argument goes: a path or query parameter, or the body (`input`)."""

    graphql: str
    name: str
    location: str  # path | query | body


@dataclass(frozen=True, slots=True)
class Call:
    """How to call one operation of one source."""

    upstream: str
    method: str
    path: str
    arguments: tuple[Argument, ...]
    headers: Mapping[str, str]
    null_on_404: bool  # a query field of object type: 404 is "there is none"
    decode: Callable[[bytes | bytearray], Any]  # a 2xx body -> the value (`ValueError`: not JSON)

    async def send(
        self, pool: UpstreamPool, identity: Mapping[str, str], values: Mapping[str, Any]
    ) -> Any:
        path, params, body = self.request(values)
        headers = {**self.headers, **identity} if self.headers else identity
        response = await pool.request(self.method, path, params=params, json=body, headers=headers)
        return self.answer(response)

    def request(self, values: Mapping[str, Any]) -> tuple[str, dict[str, str], Any]:
        path, params, body = self.path, {}, None
        for argument in self.arguments:
            value = values.get(argument.graphql)
            if argument.location == "body":
                body = value
            elif value is None:
                continue
            elif argument.location == "path":
                path = path.replace(f"{{{argument.name}}}", quote(text(value), safe=""))
            else:
                params[argument.name] = text(value)
        return path, params, body

    def answer(self, response: UpstreamResponse) -> Any:
        status = response.status
        if 200 <= status < 300:
            if status == 204 or not response.body:
                return None
            try:
                return self.decode(response.body)
            except ValueError as error:  # not JSON: the upstream's fault, never the caller's
                raise BadUpstreamResponse(self.upstream) from error
        if status == 404:
            if self.null_on_404:
                return None
            raise NotFound(short_detail(response, "Not found"))
        if 400 <= status < 500:
            raise BadUserInput(short_detail(response, "Invalid input"))
        if status >= 500:
            raise UpstreamUnavailable(self.upstream)
        raise BadUpstreamResponse(self.upstream)


KEY_TYPES = frozenset((int, str))  # exact types: a bool is written as JSON writes it
INT_ONLY = frozenset((int,))


def text(value: Any) -> str:
    """A parameter value as text: lists comma-joined, booleans as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        kinds = set(map(type, value))  # link keys, the common case: joined in C
        if kinds <= INT_ONLY:
            return ",".join(map(INT_TEXT.__getitem__, value))
        if kinds <= KEY_TYPES:
            return ",".join(map(str, value))
        return ",".join(text(v) for v in value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def short_detail(response: UpstreamResponse, fallback: str) -> str:
    """The upstream's `detail` or `message` when it is a short human string."""
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return fallback
    if not isinstance(data, dict):
        return fallback
    for key in ("detail", "message"):
        value = data.get(key)
        if isinstance(value, str) and 0 < len(value) <= MAX_DETAIL:
            return value
    return fallback
