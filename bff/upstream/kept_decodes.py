"""`decode_kept`: a cached answer's body decoded once, while the memory store keeps it.

A hit in the memory store serves the very `bytes` it stored, so a typed client would decode
the same body into the same records on every hit (a Dashboard's page of orders: about a
tenth of what a warm hit costs). The decoded value is kept beside the body instead, and handed
to every caller that decodes that body with that decoder — but only for a decoder whose type
cannot be changed once built (frozen structs, tuples, named tuples, frozen sets, scalars), so
that no caller can alter what another receives. Others decode every time.

Bounded by the bytes of the bodies it refers to (`MAX_BYTES`), least recently used first; a
body the store has dropped is let go with its entry here at the latest when the bound is
reached, so the memo never holds more than that on top of the store.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, TypeVar, cast, get_origin

import msgspec
import msgspec.inspect as mi

R = TypeVar("R")

MAX_BYTES = 16 * 1024 * 1024

_SCALARS = (
    mi.NoneType,
    mi.BoolType,
    mi.IntType,
    mi.FloatType,
    mi.StrType,
    mi.BytesType,
    mi.DateTimeType,
    mi.TimeType,
    mi.DateType,
    mi.TimeDeltaType,
    mi.UUIDType,
    mi.DecimalType,
    mi.EnumType,
    mi.LiteralType,
)

_immutable: dict[Any, bool] = {}  # per decoder type: whether what it builds is immutable
_kept: OrderedDict[tuple[int, int], tuple[object, bytes, Any]] = OrderedDict()
_size = 0


def decode_kept(decoder: msgspec.json.Decoder[R], body: bytes | bytearray) -> R:
    """`decoder.decode(body)`, the same immutable value for the same stored body."""
    if type(body) is not bytes or not immutable(decoder.type):
        return decoder.decode(body)
    key = (id(decoder), id(body))
    entry = _kept.get(key)
    if entry is not None and entry[0] is decoder and entry[1] is body:
        _kept.move_to_end(key)
        return cast(R, entry[2])
    value = decoder.decode(body)
    _keep(key, (decoder, body, value))
    return value


def _keep(key: tuple[int, int], entry: tuple[object, bytes, Any]) -> None:
    """An entry holds its decoder and body, so no other object takes their ids meanwhile."""
    global _size
    size = len(entry[1])
    if size > MAX_BYTES:
        return
    _kept[key] = entry
    _size += size
    while _size > MAX_BYTES:
        _, (_, dropped, _) = _kept.popitem(last=False)
        _size -= len(dropped)


def immutable(kind: Any) -> bool:
    """Whether every value of type `kind` is immutable all the way down (remembered)."""
    known = _immutable.get(kind)
    if known is None:
        try:
            known = _immutable[kind] = _frozen(mi.type_info(kind), set())
        except (TypeError, ValueError):
            known = _immutable[kind] = False
    return known


def _frozen(info: mi.Type, seen: set[type]) -> bool:
    if isinstance(info, _SCALARS):
        return True
    if isinstance(info, mi.Metadata):
        return _frozen(info.type, seen)
    if isinstance(info, mi.VarTupleType | mi.FrozenSetType):
        return _frozen(info.item_type, seen)
    if isinstance(info, mi.TupleType):
        return all(_frozen(t, seen) for t in info.item_types)
    if isinstance(info, mi.UnionType):
        return all(_frozen(t, seen) for t in info.types)
    if isinstance(info, mi.NamedTupleType):
        return all(_frozen(f.type, seen) for f in info.fields)
    if isinstance(info, mi.StructType):
        if info.cls in seen:  # a recursive type: as frozen as the rest of it
            return True
        seen.add(info.cls)
        config: Any = getattr(get_origin(info.cls) or info.cls, "__struct_config__", None)
        return bool(config is not None and config.frozen) and all(
            _frozen(f.type, seen) for f in info.fields
        )
    return False  # lists, dicts, dataclasses, Any...: a caller could change them
