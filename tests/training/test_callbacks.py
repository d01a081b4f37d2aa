"""The held-out check's metrics against rankings known by hand; ties count against the positive."""

from __future__ import annotations

import numpy as np
import pytest

from poolattn.training.callbacks import retrieval_metrics


def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_constant_embeddings_score_no_better_than_chance():
    # a collapsed model: every text has the same embedding, so every document ties with the positive
    n = 8
    same = _unit(np.ones((n, 4)))
    metrics = retrieval_metrics(same, same)
    assert metrics["recall@1"] <= 1 / n
    assert metrics["mrr"] == pytest.approx(1 / n)  # every positive ranks last among n tied documents


def test_known_ranking_gives_the_exact_mrr():
    # documents are the basis vectors, so score[i, j] is query i's j-th coordinate (before normalising)
    docs = np.eye(3, dtype=np.float32)
    queries = _unit([[0.9, 0.1, 0.1],    # own document first: rank 1
                     [0.5, 0.3, 0.8],    # own document last: rank 3
                     [0.6, 0.2, 0.6]])   # own document ties with document 0: the tie counts against it, rank 2
    metrics = retrieval_metrics(queries, docs)
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_non_finite_embeddings_rank_last():
    docs = np.eye(3, dtype=np.float32)
    queries = docs.copy()
    queries[1] = np.nan
    metrics = retrieval_metrics(queries, docs)
    assert metrics["recall@1"] == pytest.approx(2 / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
