"""What every typed client shares: one place that turns HTTP statuses into typed errors.

Clients call a pool, never a URL, and never see httpx. A record that cannot be built from an
answer is `BadUpstreamResponse`: the upstream broke its contract, the caller did nothing wrong.

Records are best declared as `msgspec.Struct`s and decoded straight from the body
(`get_decoded`, `decoded`): msgspec validates types and renames camelCase keys in C, about a
quarter of the CPU that JSON plus hand-built records took (`python -m bench.records`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

import msgspec

from bff.errors import BadUpstreamResponse, BadUserInput, NotFound, UpstreamUnavailable
from bff.graph.keys import Keys
from bff.int_text import INT_TEXT
from bff.upstream import UpstreamPool, UpstreamResponse
from bff.upstream.kept_decodes import decode_kept

R = TypeVar("R")

MAX_DETAIL = 200


class ServiceClient:
    """A typed facade over one upstream pool, bound to the caller's identity headers."""

    upstream: str = ""

    def __init__(self, pool: UpstreamPool, headers: Mapping[str, str] | None = None) -> None:
        self.pool = pool
        self.headers = dict(headers or {})

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self.check(await self.pool.request("GET", path, params=params, headers=self.headers))

    async def post(self, path: str, body: Any) -> Any:
        return self.check(await self.pool.request("POST", path, json=body, headers=self.headers))

    async def get_decoded(
        self,
        decoder: msgspec.json.Decoder[R],
        path: str,
        params: Mapping[str, str | int] | None = None,
    ) -> R:
        """`GET path`, its 2xx body decoded (and validated) by `decoder`."""
        response = await self.pool.request("GET", path, params=params, headers=self.headers)
        if 200 <= response.status < 300 and not response.kept:  # `decoded`'s common case
            try:
                return decoder.decode(response.body)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise BadUpstreamResponse(self.pool.name) from exc
        return self.decoded(decoder, response)

    async def post_decoded(self, decoder: msgspec.json.Decoder[R], path: str, body: Any) -> R:
        response = await self.pool.request("POST", path, json=body, headers=self.headers)
        return self.decoded(decoder, response)

    def decoded(self, decoder: msgspec.json.Decoder[R], response: UpstreamResponse) -> R:
        """The 2xx body as `decoder` types it; a body of another shape is the upstream's
        fault (`BadUpstreamResponse`), any other status its typed error."""
        if 200 <= response.status < 300:
            try:
                if response.kept:  # a cached answer: decoded once if its records are frozen
                    return decode_kept(decoder, response.body)
                return decoder.decode(response.body)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise BadUpstreamResponse(self.pool.name) from exc
        self.refuse(response)

    def check(self, response: UpstreamResponse) -> Any:
        if 200 <= response.status < 300:
            return response.json()
        self.refuse(response)

    def refuse(self, response: UpstreamResponse) -> NoReturn:
        """The typed error of a non-2xx answer."""
        status = response.status
        if status == 404:
            raise NotFound(f"{self.pool.name}: not found")
        if status == 422:
            raise BadUserInput(short_detail(response))
        if status >= 500:
            raise UpstreamUnavailable(self.pool.name)
        raise BadUpstreamResponse(self.pool.name)

    def parse(self, build: Callable[[Any], R], data: Any) -> R:
        try:
            return build(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadUpstreamResponse(self.pool.name) from exc

    def parse_items(self, build: Callable[[Any], R], data: Any) -> list[R]:
        return self.parse(lambda d: [build(item) for item in d["items"]], data)


def id_list(ids: Iterable[int]) -> str:
    """`1,2,3` for the batch endpoints, duplicates removed (a batch's `Keys` have none),
    order kept (each id's text remembered: the same ids come back request after request)."""
    if type(ids) is Keys:
        return ",".join(map(INT_TEXT.__getitem__, ids))
    return ",".join(map(INT_TEXT.__getitem__, dict.fromkeys(ids)))


def short_detail(response: UpstreamResponse) -> str:
    """The upstream's `detail` when it is a short human string; a generic message otherwise."""
    try:
        detail = response.json().get("detail")
    except (BadUpstreamResponse, AttributeError):
        detail = None
    if isinstance(detail, str) and 0 < len(detail) <= MAX_DETAIL:
        return detail
    return "Invalid input"
