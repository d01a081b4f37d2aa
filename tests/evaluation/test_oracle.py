"""Evaluation numbers against answers known by hand: an oracle encoder (a fixed vector per text) on tiny tasks
built here, scored by `evaluate`, which drives mteb's own evaluators exactly as `poolattn evaluate` does.

Each expected value follows from the vectors alone: a perfect ranking has nDCG@10 = 1; a relevant document at
rank 2 has DCG 1/log2(3) against an ideal DCG of 1; similarities in the gold order have Spearman 1, in reverse
order -1; classes on orthogonal axes are separable (accuracy 1); pairs whose positives all score above their
negatives have average precision 1.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from poolattn.evaluation.run import evaluate

DIM = 16


def _axis(i: int, j: int | None = None, angle: float = 0.0) -> np.ndarray:
    """The unit vector at `angle` radians from axis i towards axis j."""
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = math.cos(angle)
    if j is not None:
        v[j] = math.sin(angle)
    return v


class OracleEncoder:
    """Looks every text up in a table of fixed vectors; an unknown text is an error, never a guess."""

    name = "oracle"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts: Sequence[str], *, instruction: str | None = None, batch_size: int = 32,
               show_progress: bool = True) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def _suite(tmp_path: Path, tasks: dict[str, tuple[str, dict]]) -> Path:
    """A suite folder in the shipped format: manifest.json plus one gzipped JSON file per task."""
    folder = tmp_path / "suite"
    folder.mkdir()
    manifest = []
    for name, (category, payload) in tasks.items():
        with gzip.open(folder / f"{name}.json.gz", "wt", encoding="utf-8") as handle:
            json.dump(payload, handle)
        manifest.append({"name": name, "category": category, "file": f"{name}.json.gz",
                         "description": f"Oracle {category} task built by a test.", "instruction": "Find it",
                         "main_score": "", "source": "tests/evaluation/test_oracle.py", "license": "apache-2.0",
                         "counts": {}})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _scores(encoder, suite: Path, out: Path) -> dict[str, dict]:
    return evaluate(encoder, ["suite"], out, suite_dir=suite, show_progress=False, model_name="oracle")


def test_retrieval_ndcg_at_10_is_one_for_a_perfect_ranking_and_1_over_log2_3_at_rank_2(tmp_path):
    queries = {"q0": "query zero", "q1": "query one"}
    corpus = {"d0": "answer zero", "d1": "answer one", "x0": "distractor zero", "x1": "distractor one"}
    qrels = {"q0": {"d0": 1}, "q1": {"d1": 1}}
    payload = {"queries": queries, "corpus": corpus, "qrels": qrels}
    perfect = {"query zero": _axis(0), "answer zero": _axis(0), "query one": _axis(1), "answer one": _axis(1),
               "distractor zero": _axis(2), "distractor one": _axis(3)}
    # each query's distractor sits closer to it (cosine 0.9) than its answer (cosine 0.7): the answer ranks 2nd
    second = {"query zero": _axis(0), "answer zero": _axis(0, 4, math.acos(0.7)),
              "distractor zero": _axis(0, 5, math.acos(0.9)), "query one": _axis(1),
              "answer one": _axis(1, 6, math.acos(0.7)), "distractor one": _axis(1, 7, math.acos(0.9))}
    suite = _suite(tmp_path, {"OracleRetrieval": ("retrieval", payload)})
    assert _scores(OracleEncoder(perfect), suite, tmp_path / "a")["OracleRetrieval"]["main_score"] == pytest.approx(1.0)
    got = _scores(OracleEncoder(second), suite, tmp_path / "b")["OracleRetrieval"]
    assert got["main_score_name"] == "ndcg_at_10"
    assert got["main_score"] == pytest.approx(1 / math.log2(3), abs=1e-4)  # 0.6309
    assert got["main_score"] == pytest.approx(0.6309, abs=1e-4)


def test_sts_spearman_is_one_in_the_gold_order_and_minus_one_reversed(tmp_path):
    gold = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    first = [f"left {i}" for i in range(6)]
    second = [f"right {i}" for i in range(6)]
    payload = {"test": {"sentence1": first, "sentence2": second, "score": gold}, "min_score": 0, "max_score": 5}
    suite = _suite(tmp_path, {"OracleSTS": ("sts", payload)})

    def table(order):  # pair i's cosine is cos(angle_i): the angle shrinks as the similarity should grow
        out = {}
        for i, rank in enumerate(order):
            out[first[i]] = _axis(i)
            out[second[i]] = _axis(i, i + 6, math.radians(80 - 15 * rank))
        return out

    same = _scores(OracleEncoder(table(range(6))), suite, tmp_path / "a")["OracleSTS"]
    reverse = _scores(OracleEncoder(table(range(5, -1, -1))), suite, tmp_path / "b")["OracleSTS"]
    assert same["main_score_name"] == "cosine_spearman"
    assert same["main_score"] == pytest.approx(1.0)
    assert reverse["main_score"] == pytest.approx(-1.0)


def test_classification_of_separable_classes_is_exact(tmp_path):
    labels = ["red", "green", "blue"]
    train = {"text": [f"train {c} {i}" for c in labels for i in range(8)], "label": [c for c in labels for _ in range(8)]}
    test = {"text": [f"test {c} {i}" for c in labels for i in range(4)], "label": [c for c in labels for _ in range(4)]}
    rng = np.random.default_rng(0)
    table = {}
    for split in (train, test):
        for text, label in zip(split["text"], split["label"]):
            v = _axis(labels.index(label)) * 5 + rng.normal(0, 0.1, DIM).astype(np.float32)  # class axis + noise
            table[text] = v / np.linalg.norm(v)
    suite = _suite(tmp_path, {"OracleClassification": ("classification", {"train": train, "test": test})})
    got = _scores(OracleEncoder(table), suite, tmp_path / "a")["OracleClassification"]
    assert got["main_score_name"] == "accuracy" and got["main_score"] == pytest.approx(1.0)


def test_pair_classification_with_a_perfect_threshold_has_ap_one(tmp_path):
    n = 4
    left = [f"sentence {i}" for i in range(2 * n)]
    right = [f"other {i}" for i in range(2 * n)]
    label = [1] * n + [0] * n
    payload = {"test": {"sentence1": left, "sentence2": right, "label": label}}
    table = {}
    for i in range(2 * n):  # duplicates: cosine 0.95; non-duplicates: cosine 0.2 (a threshold in between is perfect)
        table[left[i]] = _axis(i)
        table[right[i]] = _axis(i, (i + 8) % DIM, math.acos(0.95 if label[i] else 0.2))
    suite = _suite(tmp_path, {"OraclePairClassification": ("pair_classification", payload)})
    got = _scores(OracleEncoder(table), suite, tmp_path / "a")["OraclePairClassification"]
    assert got["main_score_name"] == "max_ap" and got["main_score"] == pytest.approx(1.0)
