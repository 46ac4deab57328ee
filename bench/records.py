"""`python -m bench.records`: µs of CPU to decode one Dashboard's five upstream answers.

The shop's clients decode each answer's bytes straight into `msgspec.Struct` records
(`upstream_clients/records.py`): types checked and camelCase keys renamed in C. Before, they
parsed JSON with orjson and built a named tuple per item in Python. OpenAPI sources decode
their answers into records generated from the documents' schemas (`bff.sources.records`, the
shop's documents in `bench/openapi/shop`); before, into plain dicts with orjson. This decodes
the Dashboard's five bodies (a page of 20 orders, the users, products, stock and reviews
batches, from the sample data) each way, interleaved over `--rounds` rounds, and prints µs per
Dashboard and the ratio to orjson's dicts; pure CPU, no I/O. Saved as `results/records.md`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

if not __package__:  # run as `python bench/records.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from services.data import shop_data
from upstream_clients.catalog import PRODUCTS
from upstream_clients.inventory import STOCK
from upstream_clients.orders import LISTING
from upstream_clients.reviews import REVIEWS
from upstream_clients.users import USERS


class OldLine(NamedTuple):
    product_id: int
    quantity: int
    unit_price: float


class OldOrder(NamedTuple):
    id: int
    user_id: int
    status: str
    created_at: str
    items: tuple[OldLine, ...]


class OldUser(NamedTuple):
    id: int
    name: str
    email: str
    created_at: str


class OldProduct(NamedTuple):
    id: int
    name: str
    price: float
    currency: str
    category: str


class OldStock(NamedTuple):
    product_id: int
    available: int


class OldReview(NamedTuple):
    id: int
    product_id: int
    user_id: int
    rating: int
    body: str


make = tuple.__new__


def old_order(d: Any) -> OldOrder:
    lines = tuple(
        make(OldLine, (int(i["productId"]), int(i["quantity"]), float(i["unitPrice"])))
        for i in d["items"]
    )
    fields = (int(d["id"]), int(d["userId"]), str(d["status"]), str(d["createdAt"]), lines)
    return make(OldOrder, fields)


def old_user(d: Any) -> OldUser:
    return make(OldUser, (int(d["id"]), str(d["name"]), str(d["email"]), str(d["createdAt"])))


def old_product(d: Any) -> OldProduct:
    fields = (int(d["id"]), str(d["name"]), float(d["price"]), str(d["currency"]))
    return make(OldProduct, (*fields, str(d["category"])))


def old_stock(d: Any) -> OldStock:
    return make(OldStock, (int(d["productId"]), int(d["available"])))


def old_review(d: Any) -> OldReview:
    fields = (int(d["id"]), int(d["productId"]), int(d["userId"]), int(d["rating"]))
    return make(OldReview, (*fields, str(d["body"])))


def dashboard_bodies() -> list[bytes]:
    """The five answers one Dashboard of 20 orders reads, as the services send them."""
    data = shop_data(42)
    orders = sorted(data.orders.values(), key=lambda o: -o["id"])[:20]
    user_ids = sorted({o["userId"] for o in orders})
    product_ids = sorted({i["productId"] for o in orders for i in o["items"]})
    reviews = [r for p in product_ids for r in data.reviews_by_product.get(p, [])]
    return [
        orjson.dumps({"items": orders, "total": len(data.orders)}),
        orjson.dumps({"items": [data.users[u] for u in user_ids]}),
        orjson.dumps({"items": [data.products[p] for p in product_ids]}),
        orjson.dumps({"items": [data.stock[p] for p in product_ids if p in data.stock]}),
        orjson.dumps({"items": reviews}),
    ]


def decoders(bodies: list[bytes]) -> dict[str, Callable[[], object]]:
    orders, users, products, stock, reviews = bodies

    def hand_built() -> object:
        page = orjson.loads(orders)
        return (
            [old_order(i) for i in page["items"]],
            int(page["total"]),
            [old_user(i) for i in orjson.loads(users)["items"]],
            [old_product(i) for i in orjson.loads(products)["items"]],
            [old_stock(i) for i in orjson.loads(stock)["items"]],
            [old_review(i) for i in orjson.loads(reviews)["items"]],
        )

    def msgspec_structs() -> object:
        return (
            LISTING.decode(orders),
            USERS.decode(users),
            PRODUCTS.decode(products),
            STOCK.decode(stock),
            REVIEWS.decode(reviews),
        )

    sources = source_decoders()

    def plain_dicts() -> object:
        return [orjson.loads(body) for body in bodies]

    def generated_records() -> object:
        return [decode(body) for decode, body in zip(sources, bodies, strict=True)]

    return {
        "orjson into dicts": plain_dicts,
        "orjson + named tuples": hand_built,
        "msgspec structs (shop clients)": msgspec_structs,
        "generated records (OpenAPI sources)": generated_records,
    }


def source_decoders() -> list[Callable[[bytes], object]]:
    """The decoders the OpenAPI Dashboard's five calls use: the orders page's (a root
    field's) and the four links' (each answer's `items`)."""
    from graphql import GraphQLObjectType

    from bench.openapi import shop_sources
    from bff.config import settings_from_dict
    from bff.sources.build import load_sources
    from bff.sources.types import Registry

    instances = {"instances": [{"url": "http://127.0.0.1:1"}]}
    upstreams = {name: instances for name in ("orders", "users", "catalog", "reviews", "inventory")}
    secret = {"jwt": {"algorithm": "HS256", "secret": "bench-records-0123456789-abcdefghij"}}
    settings = settings_from_dict({**shop_sources(), "upstreams": upstreams, "auth": secret})
    registry, problems = Registry(), []
    loaded = load_sources(settings, registry, problems)
    records = registry.records

    def answer_of(source: str, operation_id: str) -> Any:
        operation = loaded[source].operations.served[operation_id]
        return loaded[source].types.output(operation.answer, operation.answer_where, "Answer")

    page = answer_of("orders", "orders")
    assert isinstance(page, GraphQLObjectType) and not problems, problems
    links = [("users", "users"), ("catalog", "products"), ("inventory", "stock")]
    links.append(("reviews", "reviews"))
    decoders = [records.decoder(page, "orders")]
    for source, operation_id in links:
        answer = answer_of(source, operation_id)
        items = records.outputs[answer.name]["items"]
        decoders.append(records.link_decoder(items, "items", source))
    return decoders


def best_us(fn: Callable[[], object], loops: int) -> float:
    start = time.process_time()
    for _ in range(loops):
        fn()
    return (time.process_time() - start) / loops * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--loops", type=int, default=2000, help="decodes per measurement")
    args = parser.parse_args(argv)
    bodies = dashboard_bodies()
    ways = decoders(bodies)
    results: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(args.rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for name in order:
            results[name].append(best_us(ways[name], args.loops))
    sizes = ", ".join(f"{len(b):,}" for b in bodies)
    print(f"one Dashboard's five answers ({sizes} bytes), CPU µs per Dashboard, {args.rounds}")
    print("interleaved rounds (median):\n")
    print("| decoder | µs | x orjson into dicts |")
    print("|---|---:|---:|")
    base = sorted(results["orjson into dicts"])[args.rounds // 2]
    for name, values in results.items():
        median = sorted(values)[args.rounds // 2]
        print(f"| {name} | {median:.1f} | {median / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
