"""What the benchmark sends: each workload as a GraphQL request and as its floor equivalent.

Every target receives the same request body (the floor reads and ignores it), so the bytes on
the wire differ only by the path; the floor's path says which answer to compute. The gateway
and the reference both answer the GraphQL document at `/graphql`.

A workload may be measured in fewer cells than the run asks for: `dashboard-500` exists to show
how cost grows with the response (its CPU per request against the 20-order Dashboard's), which
one concurrency and one latency show as well as all of them, at a fraction of the run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

DASHBOARD = """query Dashboard {{ orders(first: {first}) {{ nodes {{ id status total
  user {{ id name }}
  items {{ quantity product {{ id name price stock averageRating }} }} }} }} }}"""

PRODUCT = """{{ product(id: "{id}") {{ name }} }}"""

# The Dashboard as Apollo Client sends it: named fragments, `__typename` on every object (its
# cache needs them), variables with defaults, and sections behind `@include` flags. With both
# flags on, it asks for the plain Dashboard's fields plus the `__typename`s.
APOLLO_DASHBOARD = """query Dashboard($first: Int = 20, $withBuyer: Boolean = false,
    $withStock: Boolean = true) {
  orders(first: $first) { __typename nodes { ...OrderSummary } }
}
fragment OrderSummary on Order {
  __typename id status total
  user @include(if: $withBuyer) { ...Buyer }
  items { __typename quantity product { ...ProductCard } }
}
fragment Buyer on User { __typename id name }
fragment ProductCard on Product {
  __typename id name price
  ...Availability @include(if: $withStock)
}
fragment Availability on Product { __typename stock averageRating }"""


@dataclass(frozen=True)
class Workload:
    name: str
    query: str  # the GraphQL document sent to the gateway
    floor_path: str  # the floor's endpoint computing the same answer
    needs_token: bool  # whether the query reads a protected field
    description: str
    only_concurrency: tuple[int, ...] | None = None  # None: every concurrency of the run
    only_latency_ms: tuple[float, ...] | None = None  # None: every latency of the run
    variables: dict[str, Any] | None = None
    only_targets: tuple[str, ...] | None = None  # None: every target of the run

    @property
    def body(self) -> bytes:
        if self.variables is None:
            return orjson.dumps({"query": self.query})
        return orjson.dumps({"query": self.query, "variables": self.variables})

    def runs_at(self, latency_ms: float) -> bool:
        return self.only_latency_ms is None or latency_ms in self.only_latency_ms

    def runs_on(self, target: str) -> bool:
        return self.only_targets is None or target in self.only_targets

    def concurrencies(self, requested: Sequence[int]) -> list[int]:
        """The run's concurrencies this workload is measured at."""
        if self.only_concurrency is None:
            return list(requested)
        return [c for c in requested if c in self.only_concurrency]


def dashboard(
    first: int,
    only_concurrency: tuple[int, ...] | None = None,
    only_latency_ms: tuple[float, ...] | None = None,
) -> Workload:
    return Workload(
        name="dashboard" if first == 20 else f"dashboard-{first}",
        query=DASHBOARD.format(first=first),
        floor_path=f"/dashboard?first={first}",
        needs_token=True,  # `orders` needs scope orders:read
        description=f"SPEC section 3 Dashboard query, first: {first} (5 upstream calls)",
        only_concurrency=only_concurrency,
        only_latency_ms=only_latency_ms,
    )


def apollo_dashboard() -> Workload:
    return Workload(
        name="dashboard-apollo",
        query=APOLLO_DASHBOARD,
        floor_path="/dashboard?first=20",  # unused: the floor knows no `__typename`
        needs_token=True,
        description="the Dashboard as Apollo Client sends it: named fragments, `__typename`"
        " everywhere, two `@include(if: $flag)` sections, variables with defaults (5 calls)",
        only_latency_ms=(0.0,),
        variables={"first": 20, "withBuyer": True},  # `withStock` keeps its default
        only_targets=("gateway", "reference"),
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
    workloads = [
        dashboard(20),
        product(product_id),
        dashboard(100),
        # one request takes ~25 times a Dashboard's work: concurrency 1 at 0 ms says enough
        dashboard(500, only_concurrency=(1,), only_latency_ms=(0.0,)),
        apollo_dashboard(),
    ]
    return {w.name: w for w in workloads}


DEFAULT_WORKLOADS = ("dashboard", "product", "dashboard-500", "dashboard-apollo")
