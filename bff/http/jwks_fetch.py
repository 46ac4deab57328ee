"""Fetching an identity provider's JWKS: a real HTTP client, bounded in time and size.

Injected into `bff.auth.issuers` (the auth package imports no HTTP client). Every failure
is `UpstreamUnavailable`, which the issuer cache turns into "keep the keys it had".
"""

from __future__ import annotations

import httpx

from bff.errors import UpstreamUnavailable

TIMEOUT = httpx.Timeout(3.0, connect=1.0)
MAX_BYTES = 1_000_000


class JwksFetcher:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, url: str) -> bytes:
        if self._client is None:
            # Created in the serving loop; no proxy from the environment (an IdP's keys come
            # from where the config says, nowhere else).
            self._client = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False)
        try:
            async with self._client.stream(
                "GET", url, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise UpstreamUnavailable("identity provider")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise UpstreamUnavailable("identity provider", "JWKS too large")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable("identity provider") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
