"""Graded human word-similarity judgements: SimLex-999 and WordSim-353 (means of 0-10 ratings).

Source: PyPI `gensim`, gensim/test/test_data/{simlex999.txt,wordsim353.tsv}: "#" comment lines, then
"word1<TAB>word2<TAB>mean score". These are the only graded similarity judgements found in any package,
so they are the suite's only STS-style tasks; no score is ever made up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.sources import Loaded

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "gensim", "4.4.0"
FILES = {
    "simlex999": ("gensim/test/test_data/simlex999.txt",
                  "SimLex-999 (Hill, Reichart & Korhonen 2015), free for research; gensim is LGPL-2.1"),
    "wordsim353": ("gensim/test/test_data/wordsim353.tsv",
                   "WordSim-353 (Finkelstein et al. 2002), free for research; gensim is LGPL-2.1"),
}
MIN_SCORE, MAX_SCORE = 0.0, 10.0


@dataclass(frozen=True)
class WordPair:
    word1: str
    word2: str
    score: float
    dataset: str  # "simlex999" or "wordsim353"


def parse_pairs(text: str, dataset: str) -> list[WordPair]:
    """Pairs of a gensim similarity file; a repeated (word1, word2) keeps its first rating."""
    out: list[WordPair] = []
    seen: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise ValueError(f"{dataset}: expected 'word1<TAB>word2<TAB>score', got {line!r}")
        score = float(parts[2])
        if not MIN_SCORE <= score <= MAX_SCORE:
            raise ValueError(f"{dataset}: score {score} outside [{MIN_SCORE}, {MAX_SCORE}] in {line!r}")
        key = (parts[0].strip().lower(), parts[1].strip().lower())
        if key not in seen:
            seen.add(key)
            out.append(WordPair(parts[0].strip(), parts[1].strip(), score, dataset))
    return out


def load(fetcher: Fetcher) -> Loaded[WordPair]:
    items: list[WordPair] = []
    provenance = []
    stats = {}
    for dataset, (member, license) in FILES.items():
        data, prov = fetcher.wheel_member(PACKAGE, VERSION, member, license)
        pairs = parse_pairs(data.decode("utf-8"), dataset)
        stats[f"{dataset} pairs"] = len(pairs)
        items.extend(pairs)
        provenance.append(prov)
    logger.info("word similarity: %d pairs", len(items))
    notes = ["A pair listed twice (WordSim-353 has money/cash at 9.15 and 9.08) keeps its first rating."]
    return Loaded("word_similarity", items, provenance, stats, notes)
