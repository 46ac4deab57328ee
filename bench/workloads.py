"""What the benchmark sends: each workload as a GraphQL request and as its floor equivalent.

Both targets receive the same request body (the floor reads and ignores it), so the bytes on
the wire differ only by the path; the floor's path says which answer to compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

DASHBOARD = """query Dashboard {{ orders(first: {first}) {{ nodes {{ id status total
  user {{ id name }}
  items {{ quantity product {{ id name price stock averageRating }} }} }} }} }}"""

PRODUCT = """{{ product(id: "{id}") {{ name }} }}"""


@dataclass(frozen=True)
class Workload:
    name: str
    query: str  # the GraphQL document sent to the gateway
    floor_path: str  # the floor's endpoint computing the same answer
    needs_token: bool  # whether the query reads a protected field
    description: str

    @property
    def body(self) -> bytes:
        return orjson.dumps({"query": self.query})


def dashboard(first: int) -> Workload:
    return Workload(
        name="dashboard" if first == 20 else f"dashboard-{first}",
        query=DASHBOARD.format(first=first),
        floor_path=f"/dashboard?first={first}",
        needs_token=True,  # `orders` needs scope orders:read
        description=f"SPEC section 3 Dashboard query, first: {first} (5 upstream calls)",
    )


def product(product_id: int) -> Workload:
    return Workload(
        name="product",
        query=PRODUCT.format(id=product_id),
        floor_path=f"/product?id={product_id}",
        needs_token=False,  # public field: no token, so no signature check either
        description=f'one-field lookup {{ product(id: "{product_id}") {{ name }} }} (1 call)',
    )


def available(product_id: int) -> dict[str, Workload]:
    """Every workload `--workloads` accepts, by name."""
    workloads = [dashboard(20), product(product_id), dashboard(100), dashboard(500)]
    return {w.name: w for w in workloads}


DEFAULT_WORKLOADS = ("dashboard", "product")
