"""GraphQL over HTTP: which media type a response is rendered in.

`application/graphql-response+json` is answered to clients that ask for it by name (GraphiQL,
modern clients); `application/json` to everyone else, including a missing `Accept` and a bare
`*/*`, as the GraphQL-over-HTTP spec asks so that legacy clients keep working. The two differ
in status codes: under `application/json` a well-formed request with errors is a 200.
"""

from __future__ import annotations

from functools import lru_cache

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class NotAcceptable(Exception):
    """The client accepts neither media type (answered 406)."""


@lru_cache(maxsize=256)  # clients send a handful of distinct headers: parse each once
def negotiate(accept: str | None) -> str:
    """The response media type for an Accept header, or `NotAcceptable`.

    The highest quality wins; among equals, the earliest listed. Wildcards (`*/*`,
    `application/*`) mean "anything", which is `application/json`.
    """
    if not accept or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        if media == GRAPHQL_RESPONSE:
            chosen = GRAPHQL_RESPONSE
        elif media in (JSON, "application/*", "*/*"):
            chosen = JSON
        else:
            continue
        quality = _quality(params)
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, chosen)
    if best is None:
        raise NotAcceptable(f"Acceptable media types: {GRAPHQL_RESPONSE}, {JSON}")
    return best[2]


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
