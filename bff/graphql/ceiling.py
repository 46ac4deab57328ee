"""The response ceiling: a hard bound on what one request can make the gateway build.

A query's size grows with the product of its list sizes along each path: `orders(first: 2)
{ nodes { user { orders(first: 2) { ... } } } }` nested 50 deep asks for 2^50 objects from a
2 KB document, and cheap dataloader hits (the same few records again and again) do not slow
it down. Depth and cost limits (`limits.*`) refuse such documents before they run; this is the
line beneath them, on whatever runs: an execution may build at most `MAX_RESULT_VALUES` values
(each result object counts one, plus one per field it holds; the graphql-core path counts each
completed value, lists' items included). Past that it stops and the request is answered with
one `QUERY_TOO_COMPLEX` error saying the response limit was hit, and no data.

250,000 values is over ten times the 500-order Dashboard (about 19,000), a response of roughly
5-10 MB of JSON, and what it holds while building stays in the low hundreds of MB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from graphql import GraphQLError, GraphQLOutputType, GraphQLResolveInfo
from graphql.execution.executor import Executor
from graphql.pyutils import AwaitableOrValue, Path

from bff.errors import QueryTooComplex
from bff.graphql.internals import ceiling_mismatch

if TYPE_CHECKING:
    from graphql.execution.collect_fields import FieldDetailsList

MAX_RESULT_VALUES = 250_000


class ResponseTooLarge(QueryTooComplex):
    """The execution would build more than the response ceiling allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Response limit exceeded: this query would build more than {limit} values."
            " Ask for fewer items (smaller `first`) or less nesting.",
        )
        self.limit = limit


def too_large(errors: list[GraphQLError] | None) -> ResponseTooLarge | None:
    """The ceiling's error among `errors`, if execution hit it."""
    for error in errors or ():
        if isinstance(error.original_error, ResponseTooLarge):
            return error.original_error
    return None


E = TypeVar("E", bound=Executor[Any])


def bounded(base: type[E], limit: int) -> type[E]:
    """`base` (graphql-core's `Executor` or a subclass) stopping past `limit` completed
    values: the one place the ceiling hooks into graphql-core's completion."""

    class Bounded(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.completed = [0]  # shared with the sub-executors, which are shallow copies

        def complete_value(
            self,
            return_type: GraphQLOutputType,
            field_details_list: FieldDetailsList,
            info: GraphQLResolveInfo[Any],
            path: Path,
            result: Any,
            position_context: Any,
        ) -> AwaitableOrValue[Any]:
            completed = self.completed
            completed[0] += 1
            if completed[0] > limit:
                raise ResponseTooLarge(limit)
            return super().complete_value(
                return_type, field_details_list, info, path, result, position_context
            )

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{base.__name__}"
    return Bounded


def bounded_executor(limit: int) -> type[Executor[Any]] | None:
    """A graphql-core `Executor` class that stops completing values past `limit`; `None`
    when this graphql-core's `Executor` has no such method to override (its own executor
    runs, and only the fast path's ceiling and the limits of `bff.limits` apply)."""
    if ceiling_mismatch() is not None:
        return None
    return bounded(Executor, limit)
