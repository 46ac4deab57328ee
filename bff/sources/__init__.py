"""OpenAPI sources: REST services served as GraphQL from their documents, with no code.

`sources_graph(settings)` reads every `sources[]` document at start-up and builds one
`bff.graph.Graph` (`build`): documents and their `$ref`s (`document`), operations
(`operations`), root fields (`roots`), types from schemas (`types`, `names`, `scalars`),
calls and answers (`calls`), link fields (`joins`) and their batch loaders (`links`), auth
(`access`). `bff.graphs` combines it with the code-first graph and the engine's own fields.
SPEC section 12 is the contract; docs/sources.md the reference.
"""

from __future__ import annotations

from bff.sources.build import sources_graph

__all__ = ["sources_graph"]
