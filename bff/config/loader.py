"""Loading `bff.yaml`: read the file, apply `BFF_*` overrides, validate, report every problem.

The gateway reads its config once, at start-up, and refuses to start on any problem; every
problem found is reported together (`ConfigError`), each naming its key, so a broken file is
fixed in one round rather than one error per restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bff.config.env import apply_env
from bff.config.errors import ConfigError, describe
from bff.config.models import Settings
from bff.config.paths import Loc, format_path

__all__ = [
    "NOT_YET_BUILT",
    "ConfigError",
    "inactive_sections",
    "load_settings",
    "not_yet_built",
    "settings_from_dict",
]


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys, which plain YAML resolves silently to the last."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        if isinstance(key, str | int | float | bool):
            seen[key] = line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; file-level problems become a one-line `ConfigError`."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{where}: file not found"], where) from None
    except IsADirectoryError:
        raise ConfigError([f"{where}: is a directory, not a config file"], where) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not a UTF-8 text file"], where) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([f"{where}: cannot read file ({reason})"], where) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        # Built by hand: PyYAML's own message quotes the offending line, which may be a secret.
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark and exc.context_mark is not mark:
            problem += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        kind = (
            "YAML error"
            if isinstance(exc, yaml.constructor.ConstructorError)
            else "YAML syntax error"
        )
        raise ConfigError([f"{where}: {kind}{at}: {problem}"], where) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: YAML error: {type(exc).__name__}"], where) from None
    if data is None:  # an empty file means every default
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        raise ConfigError(
            [
                f"{where}: the top level must be a mapping of sections (server, upstreams, ...), "
                f"not {kind}"
            ],
            where,
        )
    return data


def _validate(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    sources: Mapping[Loc, str] | None = None,
    source: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """`env` is where `${NAME}` in `telemetry.headers` is looked up (None: `os.environ`)."""
    try:
        context = {"base_dir": base_dir, "env": env}
        return Settings.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise ConfigError(describe(exc, Settings, sources), source) from None


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """The settings from the YAML file at `path` (None: defaults only) with `BFF_*` overrides.

    `env` defaults to `os.environ`. Relative key-file paths are resolved against the directory
    of the file (the current directory when there is none). Raises `ConfigError`.
    """
    environ = os.environ if env is None else env
    file = Path(path) if path is not None else None
    data = _read_yaml(file) if file is not None else {}
    source = str(file) if file is not None else None
    try:
        merged, sources = apply_env(data, environ, Settings)
    except ConfigError as exc:
        raise ConfigError(exc.errors, source) from None
    base_dir = file.resolve().parent if file is not None else None
    return _validate(merged, base_dir=base_dir, sources=sources, source=source, env=environ)


def settings_from_dict(data: Mapping[str, Any]) -> Settings:
    """Settings from an already parsed mapping (tests, embedded demo config); no env overrides."""
    if not isinstance(data, Mapping):
        raise ConfigError(["(top level): must be a mapping of sections"])
    return _validate(data)


# Config paths whose features do not exist yet, with what is missing. `*` matches any upstream
# name or list item. Delete an entry when its feature lands. This is the one list: the warnings
# of `bff serve` / `bff check-config` and the "Not active yet" notes of docs/config.md
# (`python -m bff.config.reference docs/config.md`) are made from it.
NOT_YET_BUILT: tuple[tuple[str, str], ...] = ()


def not_yet_built(path: tuple[str, ...]) -> str | None:
    """What is missing for the key at `path` (`*` for any name or item), or None if active.

    A key is inactive when an entry names it or a section above it.
    """
    for pattern, message in NOT_YET_BUILT:
        parts = tuple(pattern.split("."))
        if len(parts) <= len(path) and all(
            p == "*" or p == k for p, k in zip(parts, path, strict=False)
        ):
            return message
    return None


def inactive_sections(settings: Settings) -> list[str]:
    """One warning per key the user wrote whose feature is not built.

    "Wrote" means present in the file or the environment (pydantic's `model_fields_set`),
    whatever the value: a key left out never warns, a key written always does (even with its
    default value, since the user may expect it to do something).
    """
    warnings: list[str] = []
    for pattern, message in NOT_YET_BUILT:
        for loc, value in _written(settings, tuple(pattern.split("."))):
            kind = "section" if isinstance(value, BaseModel | list | dict) else "setting"
            warnings.append(f"{format_path(loc)}: {message}; this {kind} has no effect")
    return warnings


def _written(node: Any, pattern: tuple[str, ...], loc: Loc = ()) -> list[tuple[Loc, Any]]:
    """The (path, value) pairs below `node` matching `pattern` that were written."""
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items: list[tuple[str | int, Any]] = (
            list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        )
        return [hit for key, child in items for hit in _written(child, rest, (*loc, key))]
    if not isinstance(node, BaseModel) or head not in type(node).model_fields:
        return []
    value = getattr(node, head)
    if rest:
        return _written(value, rest, (*loc, head))
    if head in node.model_fields_set:
        return [((*loc, head), value)]
    return []
