"""King James Version and World English Bible: the same verse in two English translations.

Source: Debian `sword-text-kjv` (module engKJV2006eb, KJV versification) and `sword-text-web` (engWEB2015eb,
NRSVA versification), SWORD zText modules. The zText reader here is a few lines of struct + zlib; the
versification tables (books, verses per chapter) come from PyPI `pysword`'s `canons`, a build-time
dependency. Verses are paired by (book, chapter, verse) only in chapters whose verse count agrees in
both versifications, so a shifted numbering never pairs two different verses.

OSIS markup is stripped here, not with pysword's cleaner: that cleaner deletes footnotes together with
the space around them ("God<note>..</note><w>created</w>" -> "Godcreated"). A removed note or quote
boundary between two letters becomes a space instead.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from poolattn.databuild.fetch import Fetcher, Provenance
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

KJV = ("sword-text-kjv", "14.3-1", "usr/share/sword/modules/texts/ztext/engKJV2006eb", "kjv")
WEB = ("sword-text-web", "426.0-1", "usr/share/sword/modules/texts/ztext/engWEB2015eb", "nrsva")
LICENSE = "public domain (module .conf: DistributionLicense=Public Domain)"

_NOTE = re.compile(r"<note\b[^>]*>.*?</note>|<title\b[^>]*>.*?</title>", re.S)
_BOUNDARY = re.compile(r"</?(q|l|lg)\b[^>]*>")  # line/quote edges sit between words
_TAG = re.compile(r"<[^>]*>")
_GLUE = "\x00"


@dataclass(frozen=True)
class VersePair:
    ref: str  # OSIS reference "Gen.1.1"
    kjv: str
    web: str

    @property
    def chapter(self) -> str:
        """The split unit: "Gen.1". Whole chapters go to one side, so neighbouring verses stay together."""
        return self.ref.rsplit(".", 1)[0]

    @property
    def verse(self) -> int:
        return int(self.ref.rsplit(".", 1)[1])


def osis_to_text(raw: str) -> str:
    """Plain text of one OSIS verse: notes and headings removed, words never glued together."""
    text = _NOTE.sub(_GLUE, raw)
    text = _BOUNDARY.sub(_GLUE, text)
    text = _TAG.sub("", text)
    text = re.sub(rf"(?<=[\w,;:.!?]){_GLUE}+(?=\w)", " ", text)
    text = text.replace(_GLUE, "").replace("\u00b6", " ")
    return normalize_space(text)


class ZText:
    """Reader for a SWORD zText module folder (ot./nt. .bzs block index, .bzv verse index, .bzz data)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._blocks: dict[tuple[str, int], bytes] = {}

    def _block(self, testament: str, number: int) -> bytes:
        key = (testament, number)
        if key not in self._blocks:
            index = (self.folder / f"{testament}.bzs").read_bytes()
            offset, size, _ = struct.unpack_from("<III", index, number * 12)
            with open(self.folder / f"{testament}.bzz", "rb") as fh:
                fh.seek(offset)
                self._blocks[key] = zlib.decompress(fh.read(size))
        return self._blocks[key]

    def entries(self, testament: str) -> list[str]:
        """Raw text of every index entry (headings and verses) of one testament, in file order."""
        path = self.folder / f"{testament}.bzv"
        if not path.exists():
            return []
        data = path.read_bytes()
        out = []
        for i in range(len(data) // 10):
            block, start, length = struct.unpack_from("<IIH", data, i * 10)
            out.append(self._block(testament, block)[start:start + length].decode("utf-8", errors="replace")
                       if length else "")
        return out


def verse_table(versification: str) -> dict[str, dict[tuple[str, int, int], int]]:
    """testament -> {(book, chapter, verse): entry index} in SWORD's layout for `versification`.

    Layout per testament: two header entries, then per book one heading, and per chapter one heading
    followed by its verses.
    """
    from pysword.canons import canons  # build-time dependency, see the [build-data] extra

    if versification not in canons:
        raise ValueError(f"unknown versification {versification!r}; pysword knows {sorted(canons)}")
    table: dict[str, dict[tuple[str, int, int], int]] = {}
    for testament in ("ot", "nt"):
        index = 2
        refs: dict[tuple[str, int, int], int] = {}
        for _name, osis, _abbr, lengths in canons[versification][testament]:
            index += 1  # book heading
            for chapter, count in enumerate(lengths, start=1):
                index += 1  # chapter heading
                for verse in range(1, count + 1):
                    refs[(osis, chapter, verse)] = index
                    index += 1
        table[testament] = refs
    return table


def naive_text(raw: str) -> str:
    """What deleting every element and tag outright gives: the "Godcreated" bug, kept for counting."""
    return normalize_space(_TAG.sub("", _NOTE.sub("", raw)).replace("\u00b6", " "))


def read_module(folder: Path, versification: str) -> tuple[dict[tuple[str, int, int], str], int]:
    """(book, chapter, verse) -> plain text for every non-empty verse of a module, and how many verses
    the naive markup stripping would have glued together (their spaces are restored here)."""
    reader = ZText(folder)
    out: dict[tuple[str, int, int], str] = {}
    repaired = 0
    for testament, refs in verse_table(versification).items():
        entries = reader.entries(testament)
        for ref, index in refs.items():
            if index < len(entries):
                text = osis_to_text(entries[index])
                if text:
                    out[ref] = text
                    repaired += len(naive_text(entries[index]).split()) < len(text.split())
    return out, repaired


def chapter_lengths(versification: str) -> dict[tuple[str, int], int]:
    """(book, chapter) -> number of verses, for the canon of `versification`."""
    return Counter((book, chapter) for t in verse_table(versification).values() for book, chapter, _ in t)


def pair_verses(kjv: dict[tuple[str, int, int], str], web: dict[tuple[str, int, int], str],
                same_chapters: set[tuple[str, int]]) -> list[VersePair]:
    """Verse pairs in canonical KJV order, limited to chapters numbered alike in both versifications."""
    pairs = []
    for (book, chapter, verse), text in kjv.items():
        other = web.get((book, chapter, verse))
        if other and (book, chapter) in same_chapters:
            pairs.append(VersePair(f"{book}.{chapter}.{verse}", truncate(text), truncate(other)))
    return pairs


_LOST_SPACE = re.compile(r"[a-z][A-Z][a-z]")  # "GodCreated"-style joins (lowercase then a capital)


def select(pairs: list[VersePair], n_kjv: int, n_web: int) -> tuple[list[VersePair], dict[str, int]]:
    """Drop verses that still look glued, very short verses and repeated verse texts."""
    stats = {"KJV verses": n_kjv, "WEB verses": n_web, "paired by reference": len(pairs)}
    kept = [p for p in pairs if not _LOST_SPACE.search(p.web) and not _LOST_SPACE.search(p.kjv)]
    stats["no glued words (lowercase followed by a capital inside a word)"] = len(kept)
    kept = [p for p in kept if len(p.kjv.split()) >= 4 and len(p.web.split()) >= 4]
    stats[">= 4 words in both translations"] = len(kept)
    kept, _ = dedup(kept, key=lambda p: dedup_key(p.kjv))
    kept, _ = dedup(kept, key=lambda p: dedup_key(p.web))
    stats["KJV and WEB text not repeating an earlier verse"] = len(kept)
    return kept, stats


def load(fetcher: Fetcher) -> Loaded[VersePair]:
    """Download both modules and pair their verses."""
    texts = []
    repaired = []
    provenance: list[Provenance] = []
    for package, version, member, versification in (KJV, WEB):
        folder, prov = fetcher.deb_member(package, version, member, LICENSE)
        verses, n_repaired = read_module(folder, versification)
        texts.append(verses)
        repaired.append(n_repaired)
        provenance.append(prov)
    kjv_len, web_len = chapter_lengths(KJV[3]), chapter_lengths(WEB[3])
    same = {c for c, n in kjv_len.items() if web_len.get(c) == n}
    pairs = pair_verses(texts[0], texts[1], same)
    items, stats = select(pairs, len(texts[0]), len(texts[1]))
    logger.info("bible: %d verse pairs after filtering", len(items))
    notes = [f"{len(kjv_len) - len(same)} chapters are numbered differently in the KJV and NRSVA "
             "versifications and are skipped.",
             f"Stripping footnotes naively glues words in {repaired[1]} WEB verses ({repaired[0]} KJV); "
             "the builder restores the space where a note or line break sat between two words."]
    return Loaded("bible", items, provenance, stats, notes)
