"""The one place that reaches into strawberry: the graphql-core schema a `strawberry.Schema`
builds.

strawberry has no public accessor for it (`Schema._schema`, the attribute its own
`execute` runs on); pyproject.toml bounds strawberry to the minor series this was checked
against, and `graphql_schema_of` refuses anything else with a message that says so, rather
than failing later in a resolver.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema


def graphql_schema_of(schema: Any) -> GraphQLSchema:
    """The graphql-core schema of a `strawberry.Schema` (or a graphql-core schema as given)."""
    if isinstance(schema, GraphQLSchema):
        return schema
    built = getattr(schema, "_schema", None)
    if not isinstance(built, GraphQLSchema):
        raise TypeError(
            f"{type(schema).__name__} is neither a strawberry.Schema this release of bff knows"
            " (strawberry-graphql 0.341) nor a graphql-core GraphQLSchema"
        )
    return built
