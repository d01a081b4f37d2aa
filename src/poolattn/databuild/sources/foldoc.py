"""FOLDOC, the Free On-line Dictionary of Computing: term -> definition, with subject categories.

Source: Debian `dict-foldoc`, /usr/share/dictd/foldoc.{index,dict.dz}. An entry is a headword line and an
indented body that usually opens with its categories in angle brackets ("<programming, language>").
The first category is the entry's label (tasks) and defines the pool that hard negatives come from.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.sources import Loaded, dictd
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "dict-foldoc", "20230119-1"
LICENSE = "GNU Free Documentation License 1.1 or later (FOLDOC, editor Denis Howe)"
INDEX, DICT = "usr/share/dictd/foldoc.index", "usr/share/dictd/foldoc.dict.dz"
MIN_WORDS = 8

_CATEGORY = re.compile(r"<([a-z][a-z0-9 ,/-]*)>\s*")  # "<programming, language>"; "<" alone is text
_DATE = re.compile(r"\(\d{4}-\d{2}-\d{2}\)")
_EDITORIAL = re.compile(r"\[[^\]]*\]")  # "[{Jargon File}]", "[Is this correct?]"
_LINK = re.compile(r"\{([^{}]*?)(?: \([^(){}]*\))?\}")  # "{term}" or "{text (url)}" -> text
_PRONUNCIATION = re.compile(r"^(?:\([^)]*\)\s*)?/[^/]{1,40}/(?:\s*or\s*/[^/]{1,40}/)*\s*")


@dataclass(frozen=True)
class Term:
    headword: str
    category: str  # first category, "" when the entry has none
    definition: str


def parse_entry(text: str) -> tuple[str, list[str], str]:
    """(headword, categories, cleaned definition) of one FOLDOC entry."""
    lines = text.strip("\n").splitlines()
    headword = lines[0].strip() if lines else ""
    body = normalize_space(" ".join(line.strip() for line in lines[1:] if line.startswith((" ", "\t"))))
    categories = [c.strip() for m in _CATEGORY.finditer(body) for c in m.group(1).split(",") if c.strip()]
    body = _CATEGORY.sub("", body)
    body = _PRONUNCIATION.sub("", body)
    body = _DATE.sub("", body)
    body = _EDITORIAL.sub("", body)
    body = _LINK.sub(r"\1", body)
    body = body.replace("{", "").replace("}", "")
    body = re.sub(r"\s+([.,;])", r"\1", normalize_space(body))
    body = re.sub(r"\.(\s*\.)+", ".", body)
    return headword, categories, body.strip()


def select(terms: list[Term], n_entries: int) -> tuple[list[Term], dict[str, int]]:
    """Drop cross-reference stubs and repeats; the stubs ("{object request broker}") define nothing."""
    stats = {"entries in foldoc.index (distinct bodies)": n_entries}
    kept = [t for t in terms if len(t.definition.split()) >= MIN_WORDS and t.headword]
    stats[f"definition of >= {MIN_WORDS} words (drops cross-reference stubs)"] = len(kept)
    kept, _ = dedup(sorted(kept, key=lambda t: t.headword.lower()), key=lambda t: dedup_key(t.headword))
    kept, _ = dedup(kept, key=lambda t: dedup_key(t.definition))
    stats["headword and definition not repeating an earlier one"] = len(kept)
    return kept, stats


def load(fetcher: Fetcher) -> Loaded[Term]:
    """Download dict-foldoc and parse every entry."""
    index_path, index_prov = fetcher.deb_member(PACKAGE, VERSION, INDEX, LICENSE)
    dict_path, dict_prov = fetcher.deb_member(PACKAGE, VERSION, DICT, LICENSE)
    entries = dictd.read_entries(index_path, dict_path)
    terms = []
    for _key, (_words, text) in sorted(entries.items()):
        headword, categories, definition = parse_entry(text)
        terms.append(Term(headword, categories[0] if categories else "", truncate(definition)))
    items, stats = select(terms, len(entries))
    logger.info("foldoc: %d terms after filtering", len(items))
    return Loaded("foldoc", items, [index_prov, dict_prov], stats)
