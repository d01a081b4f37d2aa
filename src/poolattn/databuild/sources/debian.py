"""Debian package synopsis -> long description, with the package's archive section.

Source: the bookworm `main` Translation-en index (descriptions) joined with the amd64 Packages index
(Section, Source) by package name and Description-md5. Filters drop transitional/dummy/debug packages
(boilerplate text), keep one binary package per source package (package families share paragraphs, which
would be false in-batch negatives) and drop descriptions that repeat an earlier one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher, Provenance, sha256_bytes
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

LICENSE = ("package metadata of Debian main (DFSG-free); each description belongs to its package, "
           "under that package's license")
_BOILERPLATE = re.compile(r"\b(transitional|dummy|debug(ging)? symbols|metapackage|meta-package)\b", re.I)
_DEBUG_NAME = re.compile(r"-(dbg|dbgsym)$")


@dataclass(frozen=True)
class DebianPackage:
    name: str
    source: str  # source package, groups a package family
    section: str
    synopsis: str
    description: str  # long description, paragraphs joined by one space, cut to MAX_CHARS


def parse_control(text: str) -> Iterator[dict[str, str]]:
    """Paragraphs of a deb822 file (Packages, Translation-en) as dicts; continuation lines keep "\\n"."""
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = None
        for line in block.splitlines():
            if not line:
                continue
            if line[0] in " \t":
                if last is not None:
                    fields[last] += "\n" + line
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            last = key.strip()
            fields[last] = value.strip()
        if fields:
            yield fields


def split_description(value: str) -> tuple[str, str]:
    """(synopsis, long description) from a Description field value.

    Continuation lines start with one space; " ." is an empty line (a paragraph break).
    """
    first, _, rest = value.partition("\n")
    paragraphs: list[str] = []
    current: list[str] = []
    for line in rest.splitlines():
        body = line[1:] if line.startswith(" ") else line
        if body.strip() == ".":
            if current:
                paragraphs.append(" ".join(current))
            current = []
        else:
            current.append(body.strip())
    if current:
        paragraphs.append(" ".join(current))
    return normalize_space(first), normalize_space(" ".join(paragraphs))


def index_packages(packages_text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(package, Description-md5) -> (section, source package) from a Packages index."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for para in parse_control(packages_text):
        name = para.get("Package")
        if not name:
            continue
        md5 = para.get("Description-md5", "")
        section = para.get("Section", "unknown").split("/")[-1]
        source = para.get("Source", name).split(" ")[0]
        out.setdefault((name, md5), (section, source))
    return out


def is_boilerplate(name: str, section: str, synopsis: str) -> bool:
    """Transitional, dummy, meta and debug-symbol packages: their descriptions are templates."""
    return section == "oldlibs" or bool(_DEBUG_NAME.search(name)) or bool(_BOILERPLATE.search(synopsis))


def _family_rank(pkg: DebianPackage) -> tuple[int, int, str]:
    """Which binary speaks for its source: the one named like the source, else the shortest name."""
    return (0 if pkg.name == pkg.source else 1, len(pkg.name), pkg.name)


def select(translations_text: str, packages_text: str) -> tuple[list[DebianPackage], dict[str, int]]:
    """Join the two indexes and apply every filter; returns packages sorted by name and step counts."""
    sections = index_packages(packages_text)
    stats: dict[str, int] = {}
    raw: list[DebianPackage] = []
    n_raw = 0
    for para in parse_control(translations_text):
        name, value = para.get("Package"), para.get("Description-en")
        if not name or not value:
            continue
        n_raw += 1
        hit = sections.get((name, para.get("Description-md5", "")))
        if hit is None:
            continue
        synopsis, description = split_description(value)
        raw.append(DebianPackage(name, hit[1], hit[0], truncate(synopsis), truncate(description)))
    stats["descriptions in Translation-en"] = n_raw
    stats["joined with an amd64 Packages entry (section known)"] = len(raw)

    kept = [p for p in raw if not is_boilerplate(p.name, p.section, p.synopsis)]
    stats["without transitional/dummy/meta/debug-symbol packages"] = len(kept)
    kept = [p for p in kept if len(p.description) >= 60 and len(p.description.split()) >= 8 and p.synopsis]
    stats["long description >= 60 chars and 8 words"] = len(kept)

    best: dict[str, DebianPackage] = {}
    for pkg in kept:
        if pkg.source not in best or _family_rank(pkg) < _family_rank(best[pkg.source]):
            best[pkg.source] = pkg
    kept = sorted(best.values(), key=_family_rank)
    stats["one binary package per source package"] = len(kept)

    kept, _ = dedup(kept, key=lambda p: dedup_key(p.description))
    stats["long description not repeating an earlier one"] = len(kept)
    kept, _ = dedup(kept, key=lambda p: dedup_key(p.description)[:200])
    stats["first 200 characters not repeating an earlier one"] = len(kept)
    kept, _ = dedup(kept, key=lambda p: dedup_key(p.synopsis))
    stats["synopsis not repeating an earlier one"] = len(kept)
    return sorted(kept, key=lambda p: p.name), stats


def load(fetcher: Fetcher) -> Loaded[DebianPackage]:
    """Download the bookworm indexes and return the filtered packages."""
    translations, tr_path = fetcher.apt_index("*_main_i18n_Translation-en*")
    packages, pk_path = fetcher.apt_index("*_main_binary-amd64_Packages*")
    release = fetcher.apt_release()
    version = f"{release.get('Suite', 'bookworm')} {release.get('Version', '?')} ({release.get('Date', '?')})"
    provenance = [
        Provenance("Debian archive index", "debian", version, tr_path.name, "Translation-en",
                   sha256_bytes(translations.encode("utf-8")), LICENSE),
        Provenance("Debian archive index", "debian", version, pk_path.name, "Packages (amd64)",
                   sha256_bytes(packages.encode("utf-8")), LICENSE),
    ]
    items, stats = select(translations, packages)
    logger.info("debian: %d packages after filtering", len(items))
    notes = ["Family dedup keeps one binary per Debian source package (the one named like the source, "
             "else the shortest name)."]
    return Loaded("debian", items, provenance, stats, notes)
