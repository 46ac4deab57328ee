"""`ConfigError`, and the translation of pydantic's errors into lines a person can act on.

Each line is `path: reason (got value); hint`, for example
`upstreams.users.instances[1].url: not a URL (got 'ftp//x'); use http:// or https://...`.
The value is shown only when it is safe: never for secret keys, unknown keys (a misspelt
`secret` key still holds a secret) or whole mappings, and any password inside a URL is masked.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from bff.config import paths
from bff.config.base import redact_url

# Key names whose values are treated as secret even where the models do not say so.
SECRET_NAMES = frozenset({"secret", "password", "token", "api_key", "private_key"})

# Error kinds whose input is never worth showing (or not safe to).
_NO_ECHO = frozenset({"missing", "extra_forbidden", "config_problems", "too_short"})

_REASONS: dict[str, str] = {
    "missing": "required key is missing",
    "int_parsing": "not an integer",
    "int_type": "not an integer",
    "int_from_float": "not a whole number",
    "float_parsing": "not a number",
    "float_type": "not a number",
    "finite_number": "not a finite number",
    "bool_parsing": "not a boolean; use true or false",
    "bool_type": "not a boolean; use true or false",
    "string_type": "not a string; quote the value",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of names to sections",
    "list_type": "must be a list",
    "path_type": "not a file path",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be {expected}",
    "string_too_short": "must not be empty",
}


class ConfigError(Exception):
    """The configuration is unusable; `errors` holds one line per problem.

    `source` names the file when there was one. `str()` is the lines joined by newlines, ready
    to print under a heading such as "bff.yaml is not valid:".
    """

    def __init__(self, errors: Sequence[str], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


def describe(
    exc: ValidationError, root: Any, sources: Mapping[paths.Loc, str] | None = None
) -> list[str]:
    """One line per problem in `exc`, raised while validating the model `root`.

    `sources` maps key paths set by environment variables to the variable's name, so a bad
    override names the variable that has to change.
    """
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        raw_loc = error["loc"]
        key_error = paths.KEY_MARKER in raw_loc
        if key_error:  # the bad part is a mapping key: print it as a key, even if it is a number
            at = raw_loc.index(paths.KEY_MARKER) - 1
            raw_loc = (*raw_loc[:at], str(raw_loc[at]), *raw_loc[at + 1 :])
        loc = tuple(p for p in raw_loc if not paths.is_hidden_part(p))
        if error["type"] == "config_problems":
            for problem in error["ctx"]["problems"]:
                full = loc + tuple(problem.loc)
                got = None if _is_secret(root, full) else problem.got
                lines.append(_line(full, problem.reason, got, sources))
            continue
        reason = _reason(error, loc, root, key_error)
        got = None
        if error["type"] not in _NO_ECHO and (key_error or not _is_secret(root, loc)):
            got = show(error["input"])
        lines.append(_line(loc, reason, got, sources))
    return lines


def _line(
    loc: paths.Loc, reason: str, got: str | None, sources: Mapping[paths.Loc, str] | None
) -> str:
    reason, _, hint = reason.partition("; ")
    text = f"{paths.format_path(loc) or '(top level)'}: {reason}"
    if got is not None:
        text += f" (got {got})"
    if hint:
        text += f"; {hint}"
    for source_loc, variable in (sources or {}).items():
        if loc[: len(source_loc)] == source_loc:
            text += f" (set by {variable})"
            break
    return text


def _reason(error: Any, loc: paths.Loc, root: Any, key_error: bool) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(loc, root)
    if kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", error["msg"]))
        return message.removeprefix("Assertion failed, ")
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return "must not be empty" if count == 1 else f"must have at least {count} items"
    if kind == "string_type" and key_error:
        return "names must be strings"
    template = _REASONS.get(kind)
    if template is None:
        message = str(error["msg"])
        return message[:1].lower() + message[1:]
    return template.format(**{k: _number(v) for k, v in ctx.items()})


def _number(value: Any) -> Any:
    """`0.0` -> `0`: limits on float keys read as the whole numbers people wrote."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _unknown_key(loc: paths.Loc, root: Any) -> str:
    known = paths.keys_of(paths.resolve(root, loc[:-1])) or []
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    if known:
        return f"unknown key; expected one of: {', '.join(known)}"
    return "unknown key"


def _is_secret(root: Any, loc: paths.Loc) -> bool:
    if any(isinstance(p, str) and p.lower() in SECRET_NAMES for p in loc):
        return True
    return paths.is_secret(paths.resolve(root, loc))


def show(value: Any) -> str:
    """A short, safe rendering of an offending value, spelt as YAML would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(_number(value))
    if isinstance(value, str):
        text = redact_url(value)
        return repr(text if len(text) <= 80 else text[:77] + "...")
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


__all__ = ["ConfigError", "describe", "show"]
