"""Training triples (query, positive, hard negative) from the training side of each source.

Hard negatives come from the sources' own structure, never from a model: a package of the same Debian
section, a WordNet sibling sense, the neighbouring verse, a FOLDOC term of the same category. Only
training-side items are used, for negatives too, so no evaluation text is ever seen in training.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from poolattn.databuild.keys import record_id
from poolattn.databuild.sources.bible import VersePair
from poolattn.databuild.sources.debian import DebianPackage
from poolattn.databuild.sources.foldoc import Term
from poolattn.databuild.sources.wordnet import Synset
from poolattn.databuild.text import pick, ranked

logger = logging.getLogger(__name__)

T = TypeVar("T")
Record = dict[str, str]

INSTRUCTIONS = {
    "debian": "Given a Debian package synopsis, retrieve the package's full description",
    "wordnet": "Given a word and its synonyms, retrieve the dictionary definition of that sense",
    "bible": "Given a Bible verse in the King James Version, retrieve the same verse in the World English Bible",
    "foldoc": "Given a computing term, retrieve its definition from a computing dictionary",
}
PER_SOURCE = 6000
SHUFFLE_SALT = "poolattn-train-shuffle-v1"


def _record(item: Any, source: str, query: str, positive: str, negative: str) -> Record:
    return {"id": record_id(item), "query": query, "positive": positive, "negative": negative,
            "instruction": INSTRUCTIONS[source], "source": source}


def _canonical(items: Sequence[T]) -> list[T]:
    """Items sorted by id, so candidate pools (and thus `pick`) never depend on the caller's order."""
    return sorted(items, key=record_id)


def _take(items: Sequence[T], source: str, limit: int, make: Callable[[T], Record | None]) -> tuple[list[Record], int]:
    """Records for the first `limit` items (hash order) that have a usable negative; also the misses."""
    out: list[Record] = []
    misses = 0
    for item in ranked(items, key=lambda x: record_id(x), salt=f"train:{source}"):
        if len(out) >= limit:
            break
        rec = make(item)
        if rec is None or rec["negative"] in (rec["positive"], rec["query"]):
            misses += 1
            continue
        out.append(rec)
    return out, misses


def debian_triples(packages: Sequence[DebianPackage], limit: int) -> tuple[list[Record], int]:
    """Synopsis -> description; negative: description of another package in the same section."""
    packages = _canonical(packages)
    by_section: dict[str, list[DebianPackage]] = defaultdict(list)
    for pkg in packages:
        by_section[pkg.section].append(pkg)

    def make(pkg: DebianPackage) -> Record | None:
        others = [p for p in by_section[pkg.section] if p.source != pkg.source]
        neg = pick(others, salt=f"neg:{pkg.name}")
        return None if neg is None else _record(pkg, "debian", pkg.synopsis, pkg.description, neg.description)

    return _take(packages, "debian", limit, make)


def wordnet_triples(synsets: Sequence[Synset], limit: int) -> tuple[list[Record], int]:
    """Lemmas -> definition; negative: definition of a sibling (same hypernym or same head adjective)."""
    synsets = _canonical(synsets)
    children: dict[str, list[Synset]] = defaultdict(list)
    for s in synsets:
        for parent in s.parents:
            children[parent].append(s)

    def make(s: Synset) -> Record | None:
        siblings = [c for p in s.parents for c in children[p] if c.id != s.id]
        neg = pick(siblings, salt=f"neg:{s.id}")
        return None if neg is None else _record(s, "wordnet", s.query, s.definition, neg.definition)

    return _take(synsets, "wordnet", limit, make)


def bible_triples(verses: Sequence[VersePair], limit: int) -> tuple[list[Record], int]:
    """KJV verse -> WEB verse; negative: the WEB text of the nearest other verse of the same chapter."""
    verses = _canonical(verses)
    by_chapter: dict[str, dict[int, VersePair]] = defaultdict(dict)
    for v in verses:
        by_chapter[v.chapter][v.verse] = v

    def make(v: VersePair) -> Record | None:
        chapter = by_chapter[v.chapter]
        for distance in (1, 2, 3):
            near = [chapter[n] for n in (v.verse - distance, v.verse + distance) if n in chapter]
            neg = pick(near, salt=f"neg:{v.ref}")
            if neg is not None:
                return _record(v, "bible", v.kjv, v.web, neg.web)
        return None

    return _take(verses, "bible", limit, make)


def foldoc_triples(terms: Sequence[Term], limit: int) -> tuple[list[Record], int]:
    """Term -> definition; negative: a term of the same category, else an alphabetical neighbour."""
    terms = _canonical(terms)
    by_category: dict[str, list[Term]] = defaultdict(list)
    for t in terms:
        if t.category:
            by_category[t.category].append(t)
    order = sorted(terms, key=lambda t: (t.headword.lower(), t.headword))
    position = {t.headword: i for i, t in enumerate(order)}

    def make(t: Term) -> Record | None:
        pool = [c for c in by_category.get(t.category, []) if c.headword != t.headword] if t.category else []
        if not pool:
            i = position[t.headword]
            pool = [order[j] for j in range(max(0, i - 3), min(len(order), i + 4)) if j != i]
        neg = pick(pool, salt=f"neg:{t.headword}")
        return None if neg is None else _record(t, "foldoc", t.headword, t.definition, neg.definition)

    return _take(terms, "foldoc", limit, make)


BUILDERS: dict[str, Callable[[Sequence[Any], int], tuple[list[Record], int]]] = {
    "debian": debian_triples,
    "wordnet": wordnet_triples,
    "bible": bible_triples,
    "foldoc": foldoc_triples,
}


def make_triples(
    train_side: dict[str, Sequence[Any]], per_source: int = PER_SOURCE
) -> tuple[list[Record], dict[str, dict[str, int]]]:
    """All training records, shuffled reproducibly, and per-source counts for the data card."""
    records: list[Record] = []
    stats: dict[str, dict[str, int]] = {}
    for source in sorted(train_side):
        made, misses = BUILDERS[source](train_side[source], per_source)
        stats[source] = {"training-side items": len(train_side[source]), "triples": len(made),
                         "skipped (no hard negative)": misses}
        logger.info("training: %d %s triples", len(made), source)
        records.extend(made)
    return ranked(records, key=lambda r: r["id"], salt=SHUFFLE_SALT), stats


def overlaps(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Where texts of the training set repeat, for the data card: hard negatives that are another record's
    positive (in one batch they would be false negatives of that record's query, which training masks), records
    repeating another record exactly, and records sharing their query text with another."""
    positives = {r["positive"] for r in records}
    by_source: dict[str, int] = {}
    for r in records:
        if r.get("negative") in positives:
            by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    queries: dict[str, int] = {}
    for r in records:
        queries[r["query"]] = queries.get(r["query"], 0) + 1
    whole = {json.dumps([r["query"], r["positive"], r.get("negative"), r.get("instruction")]) for r in records}
    return {
        "hard negatives equal to another positive": sum(by_source.values()),
        "hard negatives": sum(1 for r in records if r.get("negative")),
        "by source": dict(sorted(by_source.items())),
        "records repeating another record": len(records) - len(whole),
        "records sharing their query with another record": sum(n for n in queries.values() if n > 1),
    }
