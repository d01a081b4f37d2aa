"""One module per upstream source: where its files sit in which package, and how to parse them.

Each module has pure parsers (text in, records out; unit-tested on inline fixtures) and a `load(fetcher)`
that downloads the pinned package and returns a `Loaded` bundle. Nothing here decides splits or tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from poolattn.databuild.fetch import Provenance

T = TypeVar("T")


@dataclass
class Loaded(Generic[T]):
    """A parsed source: its records, where they came from, and the counts after each filter step."""

    name: str
    items: list[T]
    provenance: list[Provenance]
    stats: dict[str, int] = field(default_factory=dict)  # step description -> records left, in order
    notes: list[str] = field(default_factory=list)  # caveats for the data card
