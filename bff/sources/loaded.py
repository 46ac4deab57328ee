"""`LoadedSource`: one configured source with its document read, as the builders share it."""

from __future__ import annotations

from dataclasses import dataclass

from bff.config.source_models import SourceConfig
from bff.sources.access import SourceAccess
from bff.sources.document import Document
from bff.sources.operations import Operations
from bff.sources.types import Types


@dataclass
class LoadedSource:
    """One source with its document read."""

    index: int
    config: SourceConfig
    document: Document
    operations: Operations
    types: Types
    access: SourceAccess

    @property
    def label(self) -> str:
        return f"sources[{self.index}] ({self.config.name}, {self.config.openapi.name})"
