"""The GraphQL contract (SPEC section 3) as a strawberry schema."""

from __future__ import annotations

import strawberry

from schema.mutation import Mutation
from schema.query import Query

schema = strawberry.Schema(query=Query, mutation=Mutation)


def sdl() -> str:
    """The schema in SDL, as `bff schema` prints it."""
    return schema.as_str()


__all__ = ["Mutation", "Query", "schema", "sdl"]
