"""Key paths through the config models: how they print, and what type sits at the end of one.

Error messages, environment overrides and the generated reference all speak of keys by path
(`upstreams.users.instances[1].url`). They share this module so that a path means the same thing
in all three, and so each can ask the models (not a hand-kept list) which keys exist at a path.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

Loc = tuple[str | int, ...]


class TypeLabel:
    """Names the kind of an annotated type (`duration`, `URL`) for the generated reference."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"TypeLabel({self.kind!r})"


# Loc parts pydantic adds that are not keys a user wrote: tags of discriminated unions (ours all
# start with "~", see models.RouteAuth) and the marker of an invalid mapping key.
KEY_MARKER = "[key]"


def is_hidden_part(part: str | int) -> bool:
    return isinstance(part, str) and (part.startswith("~") or part == KEY_MARKER)


def format_path(loc: Sequence[str | int]) -> str:
    """`('upstreams', 'users', 'instances', 1, 'url')` -> `upstreams.users.instances[1].url`."""
    text = ""
    for part in loc:
        if is_hidden_part(part):
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def members(annotation: Any) -> list[Any]:
    """The alternatives of a union (None dropped), or the annotation itself."""
    annotation = strip_annotated(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        found: list[Any] = []
        for arg in get_args(annotation):
            if arg is not type(None):
                found.extend(members(arg))
        return found
    return [annotation]


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def child(annotation: Any, key: str | int) -> Any | None:
    """The annotation one step below `annotation` at `key`; None when there is no such key."""
    for member in members(annotation):
        origin = get_origin(member)
        if is_model(member) and isinstance(key, str) and key in member.model_fields:
            return member.model_fields[key].annotation
        if origin is dict and isinstance(key, str):
            return get_args(member)[1]
        if origin is list and isinstance(key, int):
            return get_args(member)[0]
    return None


def resolve(root: Any, loc: Sequence[str | int]) -> Any | None:
    """The annotation at `loc` below `root`, skipping pydantic's hidden loc parts."""
    annotation = root
    for part in loc:
        if is_hidden_part(part):
            continue
        annotation = child(annotation, part)
        if annotation is None:
            return None
    return annotation


def keys_of(annotation: Any) -> list[str] | None:
    """The keys a mapping at `annotation` accepts, when they are a fixed set (a model)."""
    for member in members(annotation):
        if is_model(member):
            return list(member.model_fields)
    return None


def is_section(annotation: Any) -> bool:
    """Whether keys can sit below `annotation` (a model, a mapping or a list)."""
    return any(is_model(m) or get_origin(m) in (dict, list) for m in members(annotation))


def is_secret(annotation: Any) -> bool:
    return any(m is SecretStr for m in members(annotation))


def is_plain_text(annotation: Any) -> bool:
    """Whether every value of this type is a string, so an env value must stay the raw string.

    Reading `BFF_AUTH__JWT__SECRET=0123` as YAML would turn the secret into the number 83.
    """
    found = members(annotation)
    return bool(found) and all(
        m in (str, SecretStr, Path)
        or (get_origin(m) is Literal and all(isinstance(a, str) for a in get_args(m)))
        for m in found
    )
