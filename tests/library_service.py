"""A small lending-library REST service (Starlette) behind `tests/openapi/library.yaml` and
`tests/openapi/people.json`: a domain that is not the shop, for the OpenAPI source tests.

It counts requests by `METHOD path` and keeps the last request's headers for each, so the
tests count calls at the service, as `tests.support.UpstreamCalls` does for the shop.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BIG = 9_780_000_000_000  # ISBN-13 numbers do not fit in 32 bits

AWARDS = {
    1: {"kind": "won", "name": "Hugo", "year": 1990},
    2: {"kind": "shortlisted", "list": "Booker"},
}
BOOKS: dict[str, dict[str, Any]] = {
    f"978-{n}": {
        "isbn": f"978-{n}",
        "title": f"Book {n}",
        "created-at": f"2020-01-0{n}T00:00:00Z",
        "genre": ["fiction", "non-fiction", "poetry"][n % 3],
        "format": ["hardcover", "paperback", "e-book", "null"][n % 4],
        "isbnNumber": BIG + n,
        "copies": n,
        "authorIds": [n, n + 1],
        "2ndEdition": n % 2 == 0,
        "__meta": {"shelf": f"A{n}", "tags": ["x", n]},
        "price": 9.5 if n % 2 else "on request",
        "editions": [{"year": 1990 + n, "publisher": "Acme"}, {"year": 2000 + n}],
        "award": AWARDS.get(n),
    }
    for n in range(1, 6)
}
AUTHORS = {
    n: {
        "id": n,
        "name": f"Author {n}",
        "born": None if n == 3 else 1900 + n,
        "links": {"home": f"https://a{n}.example"},
    }
    for n in range(1, 7)
}
MEMBERS = {
    BIG * 10 + n: {"memberId": BIG * 10 + n, "name": f"Member {n}", "level": "gold"}
    for n in range(1, 4)
}
LOANS = [
    {"id": 1, "isbn": "978-1", "memberId": BIG * 10 + 1, "state": "out"},
    {"id": 2, "isbn": "978-2", "memberId": BIG * 10 + 2, "state": "overdue"},
    {"id": 3, "isbn": "978-1", "memberId": BIG * 10 + 1, "state": "out"},
    {"id": 4, "isbn": "978-404", "memberId": 77, "state": "returned"},
    {"id": 5, "isbn": "978-3", "memberId": BIG * 10 + 3, "state": "out"},
]


class Library:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.headers: dict[str, dict[str, str]] = {}  # the last request's, by `METHOD path`
        self.bodies: list[Any] = []
        self.odd_loan: Any = None  # set: answered among the loans, breaking the contract
        self.app = Starlette(
            routes=[
                Route("/books/{isbn}", self.book),
                Route("/books", self.books, methods=["GET", "POST"]),
                Route("/loans", self.loans, methods=["GET", "POST"]),
                Route("/authors", self.authors),
                Route("/members/{member_id}", self.member),
            ]
        )

    def seen(self, request: Request) -> None:
        seen = f"{request.method} {request.url.path}"
        self.calls[seen] += 1
        self.headers[seen] = {k.lower(): v for k, v in request.headers.items()}

    async def book(self, request: Request) -> Response:
        self.seen(request)
        if request.path_params["isbn"] == "978-list":  # breaks the contract: not a Book
            return JSONResponse([1, 2])
        found = BOOKS.get(request.path_params["isbn"])
        if found is None:
            return JSONResponse({"title": "Not Found", "detail": "no such book"}, 404)
        return JSONResponse(found)

    async def books(self, request: Request) -> Response:
        self.seen(request)
        if request.method == "POST":
            body = await request.json()
            self.bodies.append(body)
            if body["isbn"] in BOOKS:
                return JSONResponse({"title": "Conflict", "detail": "isbn taken"}, 422)
            return JSONResponse(
                {**body, "genre": body["genre"], "isbnNumber": body.get("isbnNumber", 0)}, 201
            )
        size = int(request.query_params.get("page[size]", "10"))
        genre = request.query_params.get("genre")
        found = [b for b in BOOKS.values() if genre is None or b["genre"] == genre]
        return JSONResponse(found[:size])

    async def loans(self, request: Request) -> Response:
        self.seen(request)
        if request.headers.get("x-api-version") != "2":
            return JSONResponse({"detail": "X-Api-Version: 2 required"}, 400)
        if request.method == "POST":
            body = await request.json()
            self.bodies.append(body)
            return JSONResponse({"detail": "that book is out"}, 409)
        state = request.query_params.get("state")
        found: list[Any] = [loan for loan in LOANS if state is None or loan["state"] == state]
        if self.odd_loan is not None:
            found.insert(1, self.odd_loan)
        return JSONResponse({"loans": found, "next": None})

    async def authors(self, request: Request) -> Response:
        self.seen(request)
        ids = [int(i) for i in request.query_params["id"].split(",")]
        return JSONResponse({"data": [AUTHORS[i] for i in ids if i in AUTHORS]})

    async def member(self, request: Request) -> Response:
        self.seen(request)
        found = MEMBERS.get(int(request.path_params["member_id"]))
        if found is None:
            return JSONResponse({"detail": "no such member"}, 404)
        return JSONResponse(found)
