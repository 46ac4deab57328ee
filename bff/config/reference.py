"""Generate the configuration reference (docs/config.md) from the models themselves.

Hand-written config docs drift from the code; these cannot, because a test compares
docs/config.md with `render_reference()`. After changing a model, regenerate with
`python -m bff.config.reference docs/config.md`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bff.config import paths
from bff.config.loader import not_yet_built
from bff.config.models import Settings
from bff.config.paths import TypeLabel
from bff.config.units import format_duration, format_size

_INTRO = """\
# Configuration reference

<!-- Generated from bff/config/models.py by `python -m bff.config.reference docs/config.md`.
     Do not edit by hand: a test fails when this file and the models disagree. -->

The gateway reads one YAML file, `bff.yaml` (`bff serve --config bff.yaml`), once at start-up
and refuses to start if anything in it is wrong. Every problem is reported at once, each on
its own line, naming the key and what is wrong:

```text
upstreams.users.instances[1].url: not a URL (got 'ftp//x'); use http:// or https:// and a host
```

Every section and key is optional unless marked *required*; unknown keys are errors.

**Durations** are a number of seconds (`30`, `0.5`) or a number with a unit: `250ms`, `2s`,
`5m`, `1h`, `7d`. **Sizes** are a number of bytes or a number with a unit: `B`, `KB`, `MB`,
`GB` (powers of 1000: `1MB` = 1,000,000 bytes) or `KiB`, `MiB`, `GiB` (powers of 1024:
`1MiB` = 1,048,576 bytes).

**Environment overrides.** Any key can be set by an environment variable named `BFF_` plus the
key path in capitals, levels joined by `__`: `BFF_SERVER__PORT=9000`,
`BFF_AUTH__JWT__SECRET=...`, `BFF_UPSTREAMS__USERS__INSTANCES__0__URL=http://10.0.0.5:9101`
(list items by index, for items the file already has). Values are read as YAML, so
`BFF_SERVER__GRAPHIQL=false` is a boolean and `BFF_SERVER__TRUSTED_PROXIES=[10.0.0.1]` a list;
keys that hold only text (secrets, names, paths) take the value as written. A `BFF_` variable
that names no key is an error. `BFF_CONFIG` is not a key: the CLI reads it as the file's path.

In key paths below, `<name>` stands for a name you choose (lowercase letters, digits, `-`, `_`)
and `[]` for any item of a list.

**Not active yet.** The whole configuration of the specification is modelled and validated,
but some features have not landed: their keys are marked *Not active yet* below. They are
accepted and checked, do nothing, and `bff serve` and `bff check-config` warn about each one
a file or a `BFF_` variable sets.
"""

_NAMES: dict[Any, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    SecretStr: "string (secret)",
    Path: "file path",
}


def render_reference() -> str:
    """The whole reference as Markdown: every key path, its type, default and description."""
    parts = [_INTRO]
    for name, field in Settings.model_fields.items():
        section_inactive = not_yet_built((name,))
        note = f" {_inactive_note(section_inactive)}" if section_inactive else ""
        parts.append(f"## `{name}`\n\n{field.description}{note}\n")
        parts.append("| key | type | default | description |")
        parts.append("|---|---|---|---|")
        for key, kind, default, description in _rows(name, field, top=True):
            missing = None if section_inactive else not_yet_built(_pattern_of(key))
            if missing:
                description = f"{description} {_inactive_note(missing)}"
            row = (key, kind, default, description)
            parts.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        parts.append("")
    return "\n".join(parts)


def _pattern_of(key: str) -> tuple[str, ...]:
    """A row's key path as `not_yet_built` takes it: `upstreams.<name>.instances[].zone` ->
    (upstreams, *, instances, *, zone)."""
    path = key.strip("`").replace("[]", ".*").replace("<name>", "*")
    return tuple(path.split("."))


def _inactive_note(missing: str) -> str:
    return f"*Not active yet: {missing}.*"


def _rows(path: str, field: FieldInfo, top: bool = False) -> Iterator[tuple[str, str, str, str]]:
    if not top:
        yield f"`{path}`", _type(field), _default(field), field.description or ""
    for member in paths.members(field.annotation):
        if get_origin(member) is dict:
            yield from _model_rows(f"{path}.<name>", get_args(member)[1])
        elif get_origin(member) is list:
            yield from _model_rows(f"{path}[]", get_args(member)[0])
        else:
            yield from _model_rows(path, member)


def _model_rows(path: str, annotation: Any) -> Iterator[tuple[str, str, str, str]]:
    model = paths.strip_annotated(annotation)
    if paths.is_model(model):
        for name, field in model.model_fields.items():
            yield from _rows(f"{path}.{name}", field)


def _type(field: FieldInfo) -> str:
    text = _type_name(field.annotation, field.metadata)
    limits = []
    for item in field.metadata:
        for cls, attr, sign in ((at.Ge, "ge", "≥"), (at.Gt, "gt", ">"), (at.Le, "le", "≤")):
            if isinstance(item, cls):
                limits.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, at.MinLen):
            limits.append(f"at least {item.min_length}")
    return f"{text}, {' and '.join(limits)}" if limits else text


def _type_name(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    for item in [*metadata, *getattr(annotation, "__metadata__", ())]:
        if isinstance(item, TypeLabel):
            return item.kind
    words: list[str] = []
    for member in paths.members(annotation):
        if get_origin(member) is Literal:
            words.extend(f"`{v}`" for v in get_args(member))
        else:
            words.append(_one_type_name(member))
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def _one_type_name(member: Any) -> str:
    origin = get_origin(member)
    if origin is list:
        return f"list of {_type_name(get_args(member)[0])}s"
    if origin is dict:
        return f"mapping of names to {_type_name(get_args(member)[1])}s"
    if paths.is_model(member):
        return "mapping"
    return _NAMES.get(member, getattr(member, "__name__", str(member)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "*required*"
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "doc_default" in extra:  # a default that applies only partly
        return str(extra["doc_default"])
    value = field.get_default(call_default_factory=True)
    kinds = [m.kind for m in field.metadata if isinstance(m, TypeLabel)]
    if value is None:
        return "*unset*"
    if isinstance(value, BaseModel):
        return ""
    if kinds == ["duration"]:
        return f"`{format_duration(value)}`"
    if kinds == ["size"]:
        return f"`{format_size(value)}`"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Write the reference to the path given, or print it."""
    args = sys.argv[1:] if argv is None else argv
    text = render_reference()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
