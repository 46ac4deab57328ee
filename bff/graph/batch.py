"""`@batched`: a field that loads data, declared once.

A batch form is a function `fn(ctx, parents, **arguments) -> list`: one value or exception per
parent, in order, from one dataloader call (a form with nothing to load may be a plain
function). Its parameters after `parents` are the field's GraphQL arguments (annotated,
defaulted: `strawberry.UNSET` for one without a default), and its return annotation
`list[X]` names the field's GraphQL type `X`. Written in a strawberry type's body,

    @batched(permission=requires(OwnerOr("orders:read"), owner=user_id))
    async def orders(ctx: RequestContext, users: Parents, first: int | None = 10,
                     after: str | None = strawberry.UNSET) -> list[OrderConnection]:
        return await objects.orders_of_users(ctx, users, first, given(after))

it becomes the strawberry field: its per-parent resolver (the form called for one parent, what
graphql-core runs), its permission (`schema.permissions.requires`) and the form itself in
the field's metadata, which the execution fast path calls once for every parent of a level.
Both run the same function with the same checks, so they cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, get_args

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.types import Info
from strawberry.types.field import StrawberryField

BatchForm = Callable[..., "list[Any] | Awaitable[list[Any]]"]  # (ctx, parents, **arguments)

BATCH = "bff.batch"
_PARAMETER = inspect.Parameter


def batched(
    *, permission: list[FieldExtension] | None = None, description: str | None = None
) -> Callable[[BatchForm], StrawberryField]:
    """Declare the strawberry field whose values the batch form below computes."""

    def declare(fn: BatchForm) -> StrawberryField:
        field = strawberry.field(
            resolver=per_parent(fn),
            description=description,
            extensions=list(permission or ()),
            metadata={BATCH: fn},
        )
        assert isinstance(field, StrawberryField)
        return field

    return declare


def batch_of(metadata: Mapping[str, Any]) -> BatchForm | None:
    """The batch form a field declared with `@batched`, if any."""
    form: BatchForm | None = metadata.get(BATCH)
    return form


def per_parent(fn: BatchForm) -> Callable[..., Any]:
    """The strawberry resolver of `fn`'s field: `fn` for one parent, its value or its
    exception raised; its signature is `(root, info, <fn's arguments>) -> X`."""
    if inspect.iscoroutinefunction(fn):

        async def resolve_async(root: Any, info: Any, **arguments: Any) -> Any:
            return _first(await fn(info.context, (root,), **arguments))

        resolve: Callable[..., Any] = resolve_async
    else:

        def resolve_sync(root: Any, info: Any, **arguments: Any) -> Any:
            return _first(fn(info.context, (root,), **arguments))

        resolve = resolve_sync
    signature = inspect.signature(fn)
    _context, _parents, *arguments = signature.parameters.values()
    reserved = [
        _PARAMETER("root", _PARAMETER.POSITIONAL_OR_KEYWORD),
        _PARAMETER("info", _PARAMETER.POSITIONAL_OR_KEYWORD, annotation=Info),
    ]
    keywords = [p.replace(kind=_PARAMETER.KEYWORD_ONLY) for p in arguments]
    resolve.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*reserved, *keywords], return_annotation=item_of(signature.return_annotation)
    )
    resolve.__module__ = fn.__module__  # strawberry resolves the annotations in its namespace
    resolve.__name__ = resolve.__qualname__ = fn.__name__
    return resolve


def item_of(annotation: Any) -> Any:
    """`X` of a batch form's `list[X]` return annotation (text, or evaluated)."""
    if isinstance(annotation, str):
        text = annotation.strip()
        if text.startswith("list[") and text.endswith("]"):
            return text[len("list[") : -1]
    elif getattr(annotation, "__origin__", None) is list:
        (item,) = get_args(annotation)
        return item
    raise TypeError(f"a batch form must return list[<GraphQL type>], not {annotation!r}")


def _first(values: Any) -> Any:
    value = values[0]
    if isinstance(value, Exception):
        raise value
    return value


__all__ = ["BATCH", "BatchForm", "batch_of", "batched", "per_parent"]
