"""Environment overrides: `BFF_SERVER__PORT=9000` sets `server.port` over the file.

Containers and CI inject settings (above all secrets) through the environment, so any key can
be overridden: `BFF_` plus the key path, levels joined by `__`, matched case-insensitively
(`BFF_AUTH__JWT__SECRET`, `BFF_UPSTREAMS__USERS__INSTANCES__0__URL`). Values are read as YAML
(`false` is a boolean, `[10.0.0.1]` a list), except for keys that only hold text, which take
the raw string so a secret like `0123` stays a string. A variable naming a key the models do
not have is an error: a silently ignored override is a misconfiguration found in production.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

import yaml

from bff.config import paths
from bff.config.errors import ConfigError

PREFIX = "BFF_"
# Variables that share the prefix but are not config keys (BFF_CONFIG names the file).
RESERVED = frozenset({"BFF_CONFIG"})


class _Refused(Exception):
    """One unusable variable; the message says why, never with the variable's value."""


def apply_env(
    data: Mapping[str, Any], env: Mapping[str, str], root: Any
) -> tuple[dict[str, Any], dict[paths.Loc, str]]:
    """`data` with the `BFF_*` overrides of `env` applied, and which variable set which path.

    Shallower variables apply first, so `BFF_SERVER` replaces the section and
    `BFF_SERVER__PORT` then still wins for its key. Every bad variable is reported at once.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(data))
    sources: dict[paths.Loc, str] = {}
    problems: list[str] = []
    names = [n for n in env if n.upper().startswith(PREFIX) and n.upper() not in RESERVED]
    for name in sorted(names, key=lambda n: (n.count("__"), n)):
        try:
            loc, annotation = _locate(name, root)
            _assign(merged, loc, _value(env[name], annotation))
        except _Refused as exc:
            problems.append(f"{name}: {exc}")
            continue
        sources[loc] = name
    if problems:
        raise ConfigError(problems)
    return merged, sources


def _locate(name: str, root: Any) -> tuple[paths.Loc, Any]:
    """The key path a variable names, checked against the models, and the type found there."""
    parts = name[len(PREFIX) :].split("__")
    if any(not part for part in parts):
        raise _Refused("empty key in the name; join levels with exactly two underscores")
    loc: list[str | int] = []
    annotation = root
    for part in parts:
        key: str | int = int(part) if part.isdigit() else part.lower()
        below = paths.child(annotation, key)
        if below is None:
            raise _Refused(_why_not(annotation, key, tuple(loc)))
        loc.append(key)
        annotation = below
    return tuple(loc), annotation


def _why_not(annotation: Any, key: str | int, loc: paths.Loc) -> str:
    where = paths.format_path(loc) or "the top level"
    if not paths.is_section(annotation):
        return f"{where} is a single value; it has no key {key!r}"
    known = paths.keys_of(annotation)
    if known is None:
        return f"{where} is a list; use an item index such as __0__, not {key!r}"
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(known)}"
    return f"unknown key {key!r} in {where}; {hint}"


def _value(raw: str, annotation: Any) -> Any:
    if paths.is_plain_text(annotation):
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        raise _Refused(
            f"not a valid YAML value{where}; quote strings, use [a, b] for lists"
        ) from None


def _assign(data: dict[str, Any], loc: paths.Loc, value: Any) -> None:
    node: Any = data
    for depth, key in enumerate(loc[:-1]):
        wants_list = isinstance(loc[depth + 1], int)
        if isinstance(key, int):
            _check_index(node, key, loc[:depth])
            current = node[key]
        else:
            current = node.get(key)
        if wants_list:
            if not isinstance(current, list):
                current = []
        elif not isinstance(current, dict):
            current = {}
        node[key] = current
        node = current
    last = loc[-1]
    if isinstance(last, int):
        _check_index(node, last, loc[:-1])
    node[last] = value


def _check_index(node: list[Any], index: int, loc: paths.Loc) -> None:
    if index >= len(node):
        raise _Refused(
            f"{paths.format_path(loc)} has no item [{index}]; an override can only change an "
            f"item the file already has ({len(node)} there)"
        )
