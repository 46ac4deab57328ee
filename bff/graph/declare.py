"""Typed declarations of root fields: the Python type a resolver returns, the GraphQL type
the schema shows.

A root field's resolver returns records (`records.User`, `resolvers.pages.Connection`), which
the schema exposes as object types (`User`, `OrderConnection`) that read their attributes.
`field` and `mutation` say both, so the resolver's annotation is true and `mypy --strict`
checks it, and they keep strawberry's untyped decorators out of the type checker's way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.types.field import StrawberryField

Resolver = Callable[..., Any]


def _declarer(
    make: Callable[..., Any],
    graphql_type: Any,
    permission: list[FieldExtension] | None,
    description: str | None,
) -> Callable[[Resolver], StrawberryField]:
    def declare(fn: Resolver) -> StrawberryField:
        declared = make(
            resolver=fn,
            graphql_type=graphql_type,
            extensions=list(permission or ()),
            description=description,
        )
        assert isinstance(declared, StrawberryField)
        return declared

    return declare


def field(
    graphql_type: Any,
    *,
    permission: list[FieldExtension] | None = None,
    description: str | None = None,
) -> Callable[[Resolver], StrawberryField]:
    """A query field of GraphQL type `graphql_type`, resolved by the function below."""
    return _declarer(strawberry.field, graphql_type, permission, description)


def mutation(
    graphql_type: Any,
    *,
    permission: list[FieldExtension] | None = None,
    description: str | None = None,
) -> Callable[[Resolver], StrawberryField]:
    """A mutation of GraphQL type `graphql_type`, resolved by the function below."""
    return _declarer(strawberry.mutation, graphql_type, permission, description)
