"""OpenAPI sources: REST services served as GraphQL from their documents, with no code.

`sources_graph(settings)` reads every `sources[]` document at start-up and builds one
`bff.graph.Graph`: root fields from operations (`roots`), types from schemas (`types`),
batched joins from `links` (`links`), calls and answers (`calls`). `bff.graphs` combines it
with the code-first graph and the engine's own fields. SPEC section 12 is the contract.
"""

from __future__ import annotations

from bff.sources.build import sources_graph

__all__ = ["sources_graph"]
