"""The building blocks every config model shares: the base class, value checks, cross-key errors.

Value checks raise `ValueError("what is wrong; how to fix it")`. The loader prints the part
before the first "; " as the reason, then the offending value when it is safe to show, then the
hint, so each message reads `path: reason (got value); hint`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from bff.config.paths import Loc, TypeLabel, format_path

_USERINFO = re.compile(r"(?<=://)([^/@\s:]*):[^/@\s]*@")


def redact_url(text: str) -> str:
    """`redis://:hunter2@host` -> `redis://:***@host`: a password in a URL is still a secret."""
    return _USERINFO.sub(r"\1:***@", text)


class Section(BaseModel):
    """Base of every config model: unknown keys are errors and values never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value


class Problem(NamedTuple):
    """One cross-key problem, at `loc` relative to the model that found it."""

    loc: Loc
    reason: str
    got: str | None = None


def problems_error(problems: Sequence[Problem]) -> PydanticCustomError:
    """A validation error carrying several located problems, for checks that span keys.

    A model validator can only raise one error, at the model's own location; the loader unpacks
    `ctx["problems"]` so that each problem is reported at its own key, on its own line.
    """
    summary = "; ".join(f"{format_path(p.loc)}: {p.reason}" for p in problems)
    return PydanticCustomError(
        "config_problems", "{summary}", {"summary": summary, "problems": list(problems)}
    )


def _http_url(value: str) -> str:
    hint = "use http:// or https:// and a host, e.g. http://127.0.0.1:9101"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(f"not a URL; {hint}") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or any(c.isspace() for c in value)
    ):
        raise ValueError(f"not a URL; {hint}")
    if parts.query or parts.fragment:
        raise ValueError("a base URL cannot have a query or fragment; remove the part after ? or #")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url), TypeLabel("URL")]
"""An http(s) URL with a host, stored as given minus any trailing slash."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "not a valid name; use 1 to 63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_name), TypeLabel("name")]
"""A URL-safe slug: it appears in passthrough paths (`/api/{name}/...`), metrics and logs."""


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            "not an IP address or CIDR network; write e.g. 10.0.0.1 or 10.0.0.0/8"
        ) from None
    return value.strip()


IpNetwork = Annotated[str, AfterValidator(_network), TypeLabel("IP or CIDR network")]
"""An IP address or CIDR network, kept as written."""


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonBlank = Annotated[str, AfterValidator(_non_blank)]
