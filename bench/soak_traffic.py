"""The soak's traffic: a fixed rate of mixed requests from a few logged-in sessions, open loop.

Requests are due at fixed times (`rate` a second) whether or not earlier ones have been
answered, so a slow gateway cannot slow the load down and hide its own latency (coordinated
omission): each request's latency runs from when it was due to its answer. The kinds, drawn
from `MIX` with a seeded generator:

- `dashboard`: the Dashboard query of SPEC section 3 with an admin session's token;
- `product`: a product lookup (name, price, stock, rating), no token;
- `place_order`, `add_review`: the mutations, with any session's token;
- `pass_catalog`: `GET /api/catalog/products/{id}` (public), `pass_orders`: `GET
  /api/orders/orders?userId=1` with an admin token (scope `orders:read`);
- `login`: `POST /auth/token`; `refresh`: `POST /auth/refresh` with the session's refresh
  token (rotating it). One login or refresh per session at a time, as a real client does.

A session whose token the gateway refuses (401, or a refresh token refused with 400) logs in
again, outside the record, so one lost token cannot cascade into every later request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bench.workloads import DASHBOARD

MIX: dict[str, int] = {  # kind -> weight (percent)
    "dashboard": 25,
    "product": 20,
    "place_order": 8,
    "add_review": 7,
    "pass_catalog": 12,
    "pass_orders": 8,
    "login": 10,
    "refresh": 10,
}
SESSION_KINDS = frozenset({"dashboard", "place_order", "add_review", "pass_orders"})
REQUEST_TIMEOUT = 10.0  # seconds; a request unanswered by then counts as `TIMEOUT`
PRODUCTS = 500  # the sample shop's product ids are 1..500

PRODUCT_QUERY = "query Product($id: ID!) { product(id: $id) { name price stock averageRating } }"
PLACE_ORDER = "mutation Place($input: PlaceOrderInput!) { placeOrder(input: $input) { id total } }"
ADD_REVIEW = "mutation Review($input: AddReviewInput!) { addReview(input: $input) { id rating } }"
GRAPHQL_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/graphql-response+json",
}


@dataclass
class Session:
    """A client's login: who it is and the tokens it holds now."""

    username: str
    admin: bool
    access: str = ""
    refresh: str = ""
    busy: bool = False  # a login or refresh of its own is in flight

    @property
    def password(self) -> str:
        return self.username.replace("user", "password", 1)  # the sample shop's rule


@dataclass(slots=True)
class Outcome:
    """One request as the client saw it."""

    kind: str
    sent: float  # when it was due, seconds since the soak started
    latency: float  # seconds from due to answer (or to giving up)
    status: int  # HTTP status; 0 when there was none
    code: str  # "" when ok; else the error's code (GraphQL `extensions.code`, OAuth `error`, ...)
    token: bool  # it presented an access token
    detail: str = ""  # the start of the error, for the report
    lag: float = 0.0  # seconds from due until this process began sending it (its own delay)

    @property
    def ok(self) -> bool:
        return not self.code


def sessions(count: int) -> list[Session]:
    """Half admin sessions (user1, who holds `orders:read`), half customers (user2, user3...)."""
    return [
        Session("user1", True) if k % 2 == 0 else Session(f"user{k // 2 + 2}", False)
        for k in range(count)
    ]


def kinds(rng: random.Random, count: int) -> list[str]:
    return rng.choices(list(MIX), weights=list(MIX.values()), k=count)


class Traffic:
    """Sends one request of a kind and turns the answer into an `Outcome`."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, pool: list[Session], rng: random.Random
    ) -> None:
        self.client = client
        self.url = url
        self.pool = pool
        self.rng = rng
        self.t0 = time.monotonic()

    async def login_all(self) -> None:
        for session in self.pool:
            if not await self._login(session):
                raise RuntimeError(f"{session.username} could not log in")

    async def send(self, kind: str, due: float) -> Outcome:
        """`kind` sent now; `due` is when it was scheduled (monotonic seconds)."""
        began = time.monotonic()
        session = self._session_for(kind)
        owns = kind in ("login", "refresh")
        if owns and session is None:
            kind, owns = "product", False  # every session busy: a lookup instead
        if owns and session is not None:
            session.busy = True  # at once: before any await, so no other request picks it
        try:
            status, code, detail = await asyncio.wait_for(
                self._request(kind, session), REQUEST_TIMEOUT
            )
        except TimeoutError:
            status, code, detail = 0, "TIMEOUT", f"no answer within {REQUEST_TIMEOUT:g} s"
        except httpx.HTTPError as exc:
            status, code, detail = 0, type(exc).__name__, str(exc)[:200]
        finally:
            if owns and session is not None:
                session.busy = False
        outcome = Outcome(
            kind,
            due - self.t0,
            time.monotonic() - due,
            status,
            code,
            kind in SESSION_KINDS,
            detail,
            began - due,
        )
        if session is not None and (status == 401 or (kind == "refresh" and status == 400)):
            await self._relogin(session)
        return outcome

    def _session_for(self, kind: str) -> Session | None:
        if kind == "product" or kind == "pass_catalog":
            return None
        if kind in ("dashboard", "pass_orders"):
            return self.rng.choice([s for s in self.pool if s.admin])
        if kind in ("login", "refresh"):
            free = [s for s in self.pool if not s.busy]
            return self.rng.choice(free) if free else None
        return self.rng.choice(self.pool)

    async def _request(self, kind: str, session: Session | None) -> tuple[int, str, str]:
        product = str(self.rng.randint(1, PRODUCTS))
        if kind == "dashboard":
            return await self._graphql(DASHBOARD.format(first=20), {}, session)
        if kind == "product":
            return await self._graphql(PRODUCT_QUERY, {"id": product}, None)
        if kind == "place_order":
            lines = [{"productId": product, "quantity": self.rng.randint(1, 3)}]
            return await self._graphql(PLACE_ORDER, {"input": {"items": lines}}, session)
        if kind == "add_review":
            review = {"productId": product, "rating": self.rng.randint(1, 5), "body": "soak"}
            return await self._graphql(ADD_REVIEW, {"input": review}, session)
        if kind == "pass_catalog":
            return await self._get(f"/api/catalog/products/{product}", None)
        if kind == "pass_orders":
            return await self._get("/api/orders/orders?userId=1&limit=5", session)
        assert session is not None  # a login or refresh; `send` marked the session busy
        if kind == "login":
            return await self._token_call("/auth/token", _credentials(session), session)
        return await self._token_call("/auth/refresh", {"refresh_token": session.refresh}, session)

    async def _graphql(
        self, query: str, variables: dict[str, Any], session: Session | None
    ) -> tuple[int, str, str]:
        headers = dict(GRAPHQL_HEADERS)
        if session is not None:
            headers["Authorization"] = f"Bearer {session.access}"
        body = orjson.dumps({"query": query, "variables": variables})
        response = await self.client.post(f"{self.url}/graphql", content=body, headers=headers)
        return _graphql_verdict(response)

    async def _get(self, path: str, session: Session | None) -> tuple[int, str, str]:
        headers = {} if session is None else {"Authorization": f"Bearer {session.access}"}
        response = await self.client.get(f"{self.url}{path}", headers=headers)
        if response.status_code == 200:
            return 200, "", ""
        return response.status_code, _body_code(response), response.text[:200]

    async def _token_call(
        self, path: str, body: dict[str, str], session: Session
    ) -> tuple[int, str, str]:
        response = await self.client.post(f"{self.url}{path}", json=body)
        if response.status_code == 200:
            answer = response.json()
            session.access, session.refresh = answer["access_token"], answer["refresh_token"]
            return 200, "", ""
        return response.status_code, _body_code(response), response.text[:200]

    async def _login(self, session: Session) -> bool:
        status, _, _ = await self._token_call("/auth/token", _credentials(session), session)
        return status == 200

    async def _relogin(self, session: Session, tries: int = 5) -> None:
        """A fresh login for a session whose tokens were refused (not recorded)."""
        if session.busy:
            return
        session.busy = True
        try:
            for _ in range(tries):
                try:
                    if await self._login(session):
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        finally:
            session.busy = False


def _credentials(session: Session) -> dict[str, str]:
    return {"username": session.username, "password": session.password}


def _graphql_verdict(response: httpx.Response) -> tuple[int, str, str]:
    status = response.status_code
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return status, f"HTTP_{status}", response.text[:200]
    errors = body.get("errors") if isinstance(body, dict) else None
    if status == 200 and not errors:
        return 200, "", ""
    if errors:
        first = errors[0]
        code = (first.get("extensions") or {}).get("code") or f"HTTP_{status}"
        return status, str(code), str(first.get("message", ""))[:200]
    return status, f"HTTP_{status}", response.text[:200]


def _body_code(response: httpx.Response) -> str:
    """The code a REST error body names (OAuth `error`, or a GraphQL-style error), else the
    status."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}"
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return str(body["error"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = (errors[0].get("extensions") or {}).get("code")
            if code:
                return str(code)
    return f"HTTP_{response.status_code}"


async def drive(
    traffic: Traffic,
    rate: float,
    duration: float,
    started: float,
    record: Callable[[Outcome], None],
    max_in_flight: int,
    seed: int,
) -> None:
    """`rate` requests a second, due at `started + i / rate`, for `duration` seconds; every
    outcome goes to `record`. Past `max_in_flight` unanswered requests a due request is not
    sent and counts as `NOT_SENT` (the gateway is too slow for the rate)."""
    total = int(duration * rate)
    plan = kinds(random.Random(seed), total)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(kind: str, due: float) -> None:
        record(await traffic.send(kind, due))

    for index, kind in enumerate(plan):
        due = started + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            record(Outcome(kind, due - traffic.t0, 0.0, 0, "NOT_SENT", kind in SESSION_KINDS))
            continue
        task = asyncio.create_task(one(kind, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
