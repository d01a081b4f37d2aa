"""The committed artifacts: schema, size budget, train/evaluation disjointness, reproducible gzip headers.

Reads the files with gzip + json only, as the package does at run time.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from functools import cache, lru_cache
from pathlib import Path

import pytest

from poolattn.databuild.keys import TRAINING_SOURCES, split_key

RESOURCES = Path(__file__).resolve().parents[2] / "src" / "poolattn" / "resources"
SUITE = RESOURCES / "suite"
TRIPLES = RESOURCES / "train" / "triples.jsonl.gz"
MAX_CHARS, MAX_TEXTS, MAX_TOKENS = 600, 1200, 30_000
EXPECTED_MAIN_SCORE = {"retrieval": "ndcg_at_10", "classification": "accuracy", "clustering": "v_measure",
                       "pair_classification": "max_ap", "reranking": "map_at_1000", "sts": "cosine_spearman"}
RECORD_KEYS = ["id", "query", "positive", "negative", "instruction", "source"]


@lru_cache(maxsize=1)
def manifest() -> list[dict]:
    return json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))


@cache
def payload(file: str) -> dict:
    with gzip.open(SUITE / file, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def records() -> list[dict]:
    with gzip.open(TRIPLES, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def encoded_texts(category: str, p: dict) -> list[str]:
    """What an evaluation encodes for a task, written out here independently of the builder."""
    if category == "retrieval":
        return [*p["queries"].values(), *p["corpus"].values()]
    if category == "reranking":
        return [t for row in p["test"] for t in [row["query"], *row["positive"], *row["negative"]]]
    if category == "classification":
        return p["train"]["text"] + p["test"]["text"]
    if category == "clustering":
        return p["test"]["text"]
    return p["test"]["sentence1"] + p["test"]["sentence2"]


TASK_IDS = [t["name"] for t in manifest()] if (SUITE / "manifest.json").exists() else []


def test_artifacts_exist():
    assert TRIPLES.exists(), "run `poolattn data build` to create the bundled data"
    assert (SUITE / "manifest.json").exists() and (RESOURCES / "DATA_CARD.md").exists()


def test_manifest_covers_enough_tasks_and_categories():
    entries = manifest()
    categories = Counter(t["category"] for t in entries)
    assert len(entries) >= 9 and len(categories) >= 5
    for category, least in {"retrieval": 3, "classification": 2, "clustering": 2, "pair_classification": 1,
                            "reranking": 1}.items():
        assert categories[category] >= least, (category, categories)
    assert len({t["name"] for t in entries}) == len(entries)
    listed = {t["file"] for t in entries}
    assert listed == {p.name for p in SUITE.glob("*.json.gz")}, "stale or missing task files"


@pytest.mark.parametrize("name", TASK_IDS)
def test_task_schema_budget_and_counts(name):
    entry = next(t for t in manifest() if t["name"] == name)
    assert re.fullmatch(r"Poolattn[A-Z][A-Za-z0-9]+", name)
    assert entry["file"] == f"{name}.json.gz"
    assert entry["main_score"] == EXPECTED_MAIN_SCORE[entry["category"]]
    for field in ("description", "instruction", "source", "license"):
        assert isinstance(entry[field], str) and entry[field].strip()
    p = payload(entry["file"])
    category = entry["category"]
    if category == "retrieval":
        assert set(p) == {"queries", "corpus", "qrels"}
        assert set(p["qrels"]) == set(p["queries"])
        for qid, docs in p["qrels"].items():
            assert docs and all(d in p["corpus"] and v == 1 for d, v in docs.items()), qid
        assert len(p["corpus"]) >= 2 * len(p["queries"]), "retrieval corpora need distractors"
    elif category == "reranking":
        assert set(p) == {"test"}
        assert all(row["positive"] and row["negative"] for row in p["test"])
    elif category in ("classification", "clustering"):
        splits = ["train", "test"] if category == "classification" else ["test"]
        assert set(p) == set(splits)
        for split in splits:
            assert len(p[split]["text"]) == len(p[split]["label"])
            assert all(isinstance(label, str) and label for label in p[split]["label"])
        assert len(set(p["test"]["label"])) >= 2
        if category == "classification":
            assert not set(p["train"]["text"]) & set(p["test"]["text"])
            assert set(p["train"]["label"]) == set(p["test"]["label"])
    elif category == "pair_classification":
        assert set(p) == {"test"}
        t = p["test"]
        assert len(t["sentence1"]) == len(t["sentence2"]) == len(t["label"])
        assert set(t["label"]) == {0, 1}
    elif category == "sts":
        assert set(p) == {"test", "min_score", "max_score"}
        t = p["test"]
        assert len(t["sentence1"]) == len(t["sentence2"]) == len(t["score"])
        assert all(isinstance(s, float) and p["min_score"] <= s <= p["max_score"] for s in t["score"])
        assert len(set(t["score"])) > 10, "graded judgements, not binary labels"
    else:
        pytest.fail(f"unknown category {category!r}")
    texts = encoded_texts(category, p)
    assert all(isinstance(x, str) and x.strip() for x in texts), "empty text"
    assert max(len(x) for x in texts) <= MAX_CHARS
    assert len(texts) <= MAX_TEXTS
    assert sum(len(x) for x in texts) // 4 <= MAX_TOKENS
    assert entry["counts"]["texts"] == len(texts)


def test_training_records_schema_and_balance():
    recs = records()
    assert 15_000 <= len(recs) <= 30_000
    assert len({r["id"] for r in recs}) == len(recs)
    for r in recs:
        assert list(r) == RECORD_KEYS
        for field in ("query", "positive", "negative", "instruction"):
            assert isinstance(r[field], str) and r[field].strip() and len(r[field]) <= MAX_CHARS, (r["id"], field)
        assert r["positive"] != r["negative"], r["id"]
        assert r["id"].startswith(r["source"] + ":")
    by_source = Counter(r["source"] for r in recs)
    assert len(by_source) >= 3 and set(by_source) <= set(TRAINING_SOURCES)
    assert min(by_source.values()) >= 0.5 * max(by_source.values()), by_source
    # shuffled: the first thousand records are not one source in a block
    assert len({r["source"] for r in recs[:1000]}) == len(by_source)


def test_training_positives_are_unique_within_a_source():
    seen = Counter((r["source"], r["positive"]) for r in records())
    assert max(seen.values()) == 1, seen.most_common(2)


def test_training_and_evaluation_are_disjoint():
    train_keys = {split_key(r["id"]) for r in records()}
    train_texts: dict[str, set[str]] = {}
    for r in records():
        train_texts.setdefault(r["source"], set()).update((r["query"], r["positive"], r["negative"]))
    checked = 0
    for entry in manifest():
        p = payload(entry["file"])
        if entry["category"] == "retrieval" and entry["source"] in TRAINING_SOURCES:
            ids = [i.split("-", 1)[1] for i in [*p["queries"], *p["corpus"]]]
            assert not {split_key(i) for i in ids} & train_keys, entry["name"]
            checked += 1
        shared = set(encoded_texts(entry["category"], p)) & train_texts.get(entry["source"], set())
        assert not shared, (entry["name"], sorted(shared)[:3])
    assert checked >= 3


def test_gzip_files_have_zero_mtime():
    for path in [TRIPLES, *SUITE.glob("*.json.gz")]:
        header = path.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\x00\x00\x00\x00", path.name


def test_data_card_lists_every_task_and_keeps_a_baselines_section():
    card = (RESOURCES / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "## Baselines" in card
    for entry in manifest():
        assert entry["name"] in card


def test_the_cards_overlap_figures_are_those_of_the_committed_triples():
    from poolattn.databuild import card
    from poolattn.databuild.training import overlaps

    with gzip.open(TRIPLES, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    summary = json.loads((RESOURCES / "build_summary.json").read_text(encoding="utf-8"))
    found = overlaps(records)
    assert summary["training"]["overlaps"] == found
    assert found["hard negatives equal to another positive"] == 7425 and found["hard negatives"] == 24000
    text = (RESOURCES / "DATA_CARD.md").read_text(encoding="utf-8")
    assert "Overlaps: 7,425 of the 24,000 hard negatives are another record's positive" in text
    assert card.render(summary, previous=text) == text
