"""The two scalars generated schemas add to GraphQL's own: `JSON` and `Int64`.

- `JSON`: any JSON value, as the upstream sent it. A free-form object, a schema with no type,
  several types (OpenAPI 3.1 `type: [string, integer]`), or a `oneOf`/`anyOf` is served as
  `JSON`: nothing in it is lost or changed.
- `Int64`: an `integer` of `format: int64` whose `minimum`/`maximum` do not keep it within
  32 bits. GraphQL's `Int` is 32-bit and would refuse larger values, so `Int64` carries them
  exactly: a JSON number in and out (from -2^63 to 2^63-1; in input a decimal string is
  accepted too, for clients whose numbers are doubles). Anything else is an error, never a
  rounded value.

One instance of each exists, so that several sources (and the merge of their schemas with a
code-first graph) share them.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLError,
    GraphQLScalarType,
    IntValueNode,
    StringValueNode,
    ValueNode,
    value_from_ast_untyped,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _json_literal(node: ValueNode) -> Any:
    return value_from_ast_untyped(node)


JSON = GraphQLScalarType(
    "JSON",
    description="Any JSON value, as the upstream sent it (free-form objects, unions of types).",
    coerce_output_value=lambda value: value,
    coerce_input_value=lambda value: value,
    coerce_input_literal=_json_literal,
)


def _int64(value: Any) -> int:
    if isinstance(value, bool):
        raise GraphQLError(f"Int64 cannot represent a boolean: {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise GraphQLError(f"Int64 cannot represent {value!r}") from None
    if not isinstance(value, int):
        raise GraphQLError(f"Int64 cannot represent {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise GraphQLError(f"Int64 cannot represent {value}: outside 64 bits")
    return value


def _int64_literal(node: ValueNode) -> int:
    if isinstance(node, IntValueNode | StringValueNode):
        return _int64(node.value)
    raise GraphQLError("Int64 needs an integer")


INT64 = GraphQLScalarType(
    "Int64",
    description="A 64-bit integer (OpenAPI `format: int64`), exact: a JSON number; input "
    "also accepts it as a decimal string.",
    coerce_output_value=_int64,
    coerce_input_value=_int64,
    coerce_input_literal=_int64_literal,
)
