"""WordNet 3.0 synsets: lemmas, gloss, lexicographer file (supersense) and the links that define siblings.

Source: Debian `wordnet-base`, files /usr/share/wordnet/data.{noun,verb,adj,adv} (format: wndb(5WN)).
Siblings (children of one hypernym, or satellites of one head adjective) are the hard negatives: they sit
next to the synset in the hierarchy, so their definitions are close in meaning but not the same.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher, Provenance
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "wordnet-base", "1:3.0-37"
LICENSE = "WordNet 3.0 license (Princeton University; permissive, BSD-like)"
DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")

# The 45 lexicographer files, by number (lexnames(5WN)).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}  # satellites live in data.adj with the heads


@dataclass(frozen=True)
class Synset:
    id: str  # "n:00976953": part of speech (satellites as "a") and byte offset in the data file
    lexname: str  # supersense, e.g. "noun.act"
    lemmas: tuple[str, ...]
    definition: str  # the gloss without its quoted examples
    parents: tuple[str, ...]  # hypernyms (incl. instance) or, for a satellite adjective, its head

    @property
    def query(self) -> str:
        """The synset's words as a query: at most five lemmas, comma-separated."""
        return ", ".join(self.lemmas[:5])


def split_gloss(gloss: str) -> str:
    """The definition part of a gloss: everything before the first quoted example."""
    head = gloss.split('"', 1)[0]
    return normalize_space(head).rstrip(" ;,:")


def parse_data_line(line: str) -> Synset | None:
    """One line of a data.* file -> Synset; None for the license header (lines starting with spaces)."""
    if not line or line.startswith(" "):
        return None
    fields_part, _, gloss = line.partition(" | ")
    fields = fields_part.split()
    offset, lex_num, ss_type = fields[0], int(fields[1]), fields[2]
    n_words = int(fields[3], 16)
    pos = 4
    lemmas: list[str] = []
    for _ in range(n_words):
        word = re.sub(r"\((a|p|ip)\)$", "", fields[pos]).replace("_", " ")
        if word not in lemmas:
            lemmas.append(word)
        pos += 2
    n_pointers = int(fields[pos])
    pos += 1
    parents: list[str] = []
    for _ in range(n_pointers):
        symbol, target, target_pos = fields[pos], fields[pos + 1], fields[pos + 2]
        pos += 4
        if symbol in ("@", "@i") or (symbol == "&" and ss_type == "s"):
            parents.append(f"{_POS[target_pos]}:{target}")
    return Synset(
        id=f"{_POS[ss_type]}:{offset}",
        lexname=LEXNAMES[lex_num],
        lemmas=tuple(lemmas),
        definition=truncate(split_gloss(gloss)),
        parents=tuple(parents),
    )


def parse_data(text: str) -> list[Synset]:
    """All synsets of one data.* file."""
    return [s for s in (parse_data_line(line) for line in text.splitlines()) if s is not None]


def select(synsets: list[Synset]) -> tuple[list[Synset], dict[str, int]]:
    """Drop too-short definitions and repeated definitions (a repeat would be a false negative)."""
    stats = {"synsets in data.noun/verb/adj/adv": len(synsets)}
    kept = [s for s in synsets if len(s.definition.split()) >= 3]
    stats["definition of >= 3 words"] = len(kept)
    kept, _ = dedup(sorted(kept, key=lambda s: s.id), key=lambda s: dedup_key(s.definition))
    stats["definition not repeating an earlier one"] = len(kept)
    kept, _ = dedup(kept, key=lambda s: dedup_key(s.query))
    stats["lemma list not repeating an earlier one"] = len(kept)
    return kept, stats


def load(fetcher: Fetcher) -> Loaded[Synset]:
    """Download wordnet-base and parse its four data files."""
    synsets: list[Synset] = []
    provenance: list[Provenance] = []
    for name in DATA_FILES:
        path, prov = fetcher.deb_member(PACKAGE, VERSION, f"usr/share/wordnet/{name}", LICENSE)
        synsets.extend(parse_data(path.read_text(encoding="utf-8", errors="replace")))
        provenance.append(prov)
    items, stats = select(synsets)
    logger.info("wordnet: %d synsets after filtering", len(items))
    return Loaded("wordnet", items, provenance, stats)
