"""What every sample service shares: options, the fault-injection stage and request helpers.

The services exist to be put behind the gateway in tests and benchmarks, so they must be cheap
(benchmarks should measure the gateway, not them) and controllable (latency and failures on
demand, request counts to prove batching). Hence:

- `ServiceMiddleware` is a pure ASGI stage (no `BaseHTTPMiddleware`, whose per-request task and
  body wrapping cost more than the handlers) that counts, delays and fails requests, and
  echoes a request's `X-Request-Id` in its response;
- handlers parse query strings and bodies by hand and answer with orjson bytes: every 422
  carries one short string `detail`, and no pydantic model sits on the hot path.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_BATCH_IDS = 1000
MAX_BODY_CHARS = 2000

# Probes and the control plane stay exact and fast whatever faults are injected.
UNMETERED_PATHS = frozenset({"/health", "/_stats", "/_stats/reset"})

# Headers a test may ask about: what identity and credentials reached the upstream.
OBSERVED_HEADERS = frozenset(
    {b"x-user-id", b"x-user-scopes", b"authorization", b"traceparent", b"tracestate"}
)

_JSON = "application/json"
_ID = re.compile(r"[0-9]{1,18}")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_FAILURE_BODY = orjson.dumps({"detail": "injected failure"})


@dataclass(frozen=True)
class ServiceOptions:
    """How one service instance behaves: data seed and injected latency / failures."""

    seed: int = 42
    latency: float = 0.0  # seconds added before every metered request
    failure_rate: float = 0.0  # fraction of metered requests answered with `fail_status`
    fail_status: int = 503
    # Caching headers on every metered GET answered 2xx (what the gateway's cache reads):
    cache_control: str = ""  # e.g. "max-age=60" or "private, max-age=5"
    etag: bool = False  # an `ETag` over the body; `If-None-Match` with it answers 304
    set_cookie: str = ""  # a `Set-Cookie` on every metered answer

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError(f"latency: must be >= 0 seconds, got {self.latency}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate: must be between 0 and 1, got {self.failure_rate}")
        if not 400 <= self.fail_status <= 599:
            raise ValueError(f"fail_status: must be an HTTP error status, got {self.fail_status}")


class RequestStats:
    """Request counters a test reads to prove how many upstream calls the gateway made."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.last_headers: dict[str, str] = {}

    def count(self, method: str, path: str) -> None:
        key = f"{method} {path}"
        self.requests += 1
        self.by_path[key] = self.by_path.get(key, 0) + 1

    def remember(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Keep the caller-identity headers of the last request (what the gateway forwarded)."""
        self.last_headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in OBSERVED_HEADERS
        }

    def reset(self) -> None:
        self.requests = 0
        self.by_path = {}
        self.last_headers = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_path": dict(self.by_path),
            "last_headers": dict(self.last_headers),
        }


class ServiceMiddleware:
    """Count, then delay, then maybe fail every request outside `UNMETERED_PATHS`.

    Failures draw from a `random.Random(seed)` of their own, so a run with the same options and
    the same request sequence fails the same requests.
    """

    def __init__(self, app: ASGIApp, options: ServiceOptions, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats
        self.latency = options.latency
        self.failure_rate = options.failure_rate
        self.fail_status = options.fail_status
        self.options = options
        self._rng = random.Random(options.seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = echo_request_id(scope, send)
        if scope["type"] != "http" or scope["path"] in UNMETERED_PATHS:
            await self.app(scope, receive, send)
            return
        self.stats.count(scope["method"], scope["path"])
        self.stats.remember(scope["headers"])
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.failure_rate and self._rng.random() < self.failure_rate:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.fail_status,
                    "headers": [
                        (b"content-type", _JSON.encode()),
                        (b"content-length", str(len(_FAILURE_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _FAILURE_BODY})
            return
        options = self.options
        if options.set_cookie or (
            scope["method"] == "GET" and (options.cache_control or options.etag)
        ):
            send = caching_headers(scope, send, options)
        await self.app(scope, receive, send)


def caching_headers(scope: Scope, send: Send, options: ServiceOptions) -> Send:
    """`send`, adding the caching headers `options` ask for to a 2xx answer (and a 304 for
    a GET whose `If-None-Match` names the body's ETag): the answer is held until complete."""
    asked = next((v for n, v in scope["headers"] if n == b"if-none-match"), None)
    held: list[Message] = []

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            held.append(message)
            return
        if message["type"] != "http.response.body" or not held:
            await send(message)
            return
        held.append(message)
        if message.get("more_body"):
            return
        start, *parts = held
        body = b"".join(part.get("body", b"") for part in parts)
        headers = list(start.get("headers", ()))
        status = start["status"]
        if 200 <= status < 300 and scope["method"] == "GET":
            if options.cache_control:
                headers.append((b"cache-control", options.cache_control.encode("latin-1")))
            if options.etag:
                tag = b'"%s"' % hashlib.blake2b(body, digest_size=8).hexdigest().encode()
                headers.append((b"etag", tag))
                if asked is not None and tag in (t.strip() for t in asked.split(b",")):
                    status, body = 304, b""
                    headers = [(n, v) for n, v in headers if n != b"content-length"]
                    headers.append((b"content-length", b"0"))
        if options.set_cookie:
            headers.append((b"set-cookie", options.set_cookie.encode("latin-1")))
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return send_with_headers


def echo_request_id(scope: Scope, send: Send) -> Send:
    """`send`, adding the request's `X-Request-Id` to its response when it had one.

    An echoed id lets a client prove that an answer belongs to its request: a response that
    arrives late on a kept-alive connection cannot pass for the next request's answer.
    """
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            field = (b"x-request-id", value)
            break
    else:
        return send

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), field]}
        await send(message)

    return send_with_id


def create_service_app(name: str, options: ServiceOptions) -> FastAPI:
    """A FastAPI app with the parts every service has: /health, /_stats and the middleware."""
    app = FastAPI(title=f"bff sample service: {name}", docs_url=None, redoc_url=None)
    stats = RequestStats()
    app.state.stats = stats
    app.add_middleware(ServiceMiddleware, options=options, stats=stats)

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/_stats")
    async def read_stats() -> Response:
        return json_response(stats.snapshot())

    @app.post("/_stats/reset")
    async def reset_stats() -> Response:
        stats.reset()
        return json_response(stats.snapshot())

    return app


def json_response(content: Any, status_code: int = 200) -> Response:
    """Serialize with orjson straight to bytes: the cheapest JSON answer Starlette can send."""
    return Response(orjson.dumps(content), status_code=status_code, media_type=_JSON)


def invalid(detail: str) -> HTTPException:
    """A 422 whose body is `{"detail": detail}`; raise it from any handler or helper."""
    return HTTPException(status_code=422, detail=detail)


def not_found(detail: str) -> HTTPException:
    return HTTPException(status_code=404, detail=detail)


def parse_id(raw: str, what: str = "id") -> int:
    """A positive integer id, or 422 naming the offending text."""
    text = raw.strip()
    if _ID.fullmatch(text) is None or int(text) == 0:
        raise invalid(f"{what}: {raw!r} is not a positive integer")
    return int(text)


def query_ids(request: Request, name: str) -> list[int] | None:
    """Ids from `?name=1,2,3` (repeatable), blanks ignored, duplicates dropped; None if absent."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    ids: dict[int, None] = {}
    for value in values:
        for part in value.split(","):
            if part.strip():
                ids[parse_id(part, name)] = None
    if len(ids) > MAX_BATCH_IDS:
        raise invalid(f"too many ids in {name}: at most {MAX_BATCH_IDS}")
    return list(ids)


def required_query_ids(request: Request, name: str) -> list[int]:
    ids = query_ids(request, name)
    if ids is None:
        raise invalid(f"query parameter {name} is required")
    return ids


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if _INTEGER.fullmatch(text) is None or not low <= int(text) <= high:
        raise invalid(f"{name} must be an integer between {low} and {high}, got {raw!r}")
    return int(text)


def page_params(request: Request) -> tuple[int, int]:
    """(offset, limit) from the query: limit 0..MAX_LIMIT (default 20), offset >= 0."""
    limit = query_int(request, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    offset = query_int(request, "offset", 0, 0, 2**31 - 1)
    return offset, limit


def items(records: Iterable[Any]) -> Response:
    """The batch answer shape: `{"items": [...]}`."""
    return json_response({"items": list(records)})


def page(records: list[Any], total: int) -> Response:
    """The list answer shape: `{"items": [...], "total": T}`."""
    return json_response({"items": records, "total": total})


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or 422."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


def int_field(body: Mapping[str, Any], key: str, low: int = 1, high: int = 2**31 - 1) -> int:
    """An integer field within [low, high]; booleans are not integers here."""
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"{key} must be an integer between {low} and {high}")
    return value


def str_field(body: Mapping[str, Any], key: str, max_chars: int = MAX_BODY_CHARS) -> str:
    """A non-blank string field of at most `max_chars` characters."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{key} must be a non-empty string")
    if len(value) > max_chars:
        raise invalid(f"{key} must be at most {max_chars} characters")
    return value
