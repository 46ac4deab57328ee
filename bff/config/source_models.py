"""Config of OpenAPI sources and the links between them (SPEC section 12).

A source names an upstream and an OpenAPI document; the gateway turns the document into
GraphQL at start-up. What can be checked without reading the documents is checked here (the
upstream exists, names are unique, a link names a source); what needs the documents (an
operation, a type, a parameter) is checked when the graph is built, with the place in the
document (`bff.sources`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from bff.config.base import Name, NonBlank, Section
from bff.config.models import RouteAuth
from bff.config.paths import TypeLabel

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _type_prefix(value: str) -> str:
    if value and not _PREFIX.fullmatch(value):
        raise ValueError(
            "not a GraphQL name prefix; use letters, digits and '_', starting with a letter"
        )
    if value.startswith("__"):
        raise ValueError("GraphQL reserves names starting with '__'; start with a letter")
    return value


TypePrefix = Annotated[str, AfterValidator(_type_prefix), TypeLabel("GraphQL name prefix")]


class SourceConfig(Section):
    name: Name = Field(description="Name of the source, unique; links refer to it.")
    upstream: Name = Field(
        description="Upstream (a key of `upstreams`) the operations are sent to: its pool, "
        "balancing, retries and spans. The document's `servers` are ignored: a path of the "
        "document is appended to the instance URL."
    )
    openapi: Path = Field(
        description="The OpenAPI 3.0 or 3.1 document, JSON or YAML. Relative paths are "
        "relative to the config file."
    )
    operations: list[NonBlank] | None = Field(
        None,
        description="The operationIds to expose as root fields; default: every one.",
    )
    prefix: TypePrefix = Field(
        "", description="Prepended to every generated type name (to resolve clashes)."
    )
    auth: RouteAuth = Field(
        "authenticated",
        description="Who may call the source's fields (root fields and links to it): "
        "`public`, `authenticated`, or `{scopes: [...]}`, as routes.",
    )
    max_batch: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Most keys one batched link call sends; more keys are split into "
        "several calls.",
    )
    headers: dict[NonBlank, str] = Field(
        default_factory=dict,
        description="Headers sent with every call to this source; they also supply required "
        "header parameters of the document.",
    )

    @field_validator("openapi")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        if base is not None and not value.is_absolute():
            return Path(base) / value
        return value


class LinkConfig(Section):
    type: NonBlank = Field(
        description="Generated type the field is added to, as named in the schema (prefix "
        "included)."
    )
    field: NonBlank = Field(description="Name of the new field.")
    source: Name = Field(description="Source (a `sources[].name`) whose operation is called.")
    operation: NonBlank = Field(description="operationId (of `source`) called with the keys.")
    key: NonBlank = Field(
        description="Property of the parent object whose value selects the child."
    )
    argument: NonBlank = Field(
        description="Parameter of the operation the keys go into. A query parameter gets all "
        "keys of one level in one call, comma-joined; a path parameter one call per key."
    )
    result: str | None = Field(
        None,
        description="Property of the response holding the list of items; absent: the "
        "response is the list (or, for a path parameter, the one item).",
    )
    match: str | None = Field(
        None,
        description="Property of each item compared with the key; needed for a query parameter.",
    )
    list: bool = Field(
        False,
        description="The field is a list of every matching item; else the one match or null.",
    )
