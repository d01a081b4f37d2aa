"""InfoNCE: value against a hand computation, negative controls, per-device groups."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from poolattn.losses import InfoNCELoss, build_loss


def _embeddings(q=4, n_neg=1, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    queries = torch.randn(q, d, generator=gen)
    positives = queries + 0.3 * torch.randn(q, d, generator=gen)  # close to their queries
    negatives = torch.randn(q * n_neg, d, generator=gen)
    return queries, torch.cat([positives, negatives])


def test_value_matches_a_hand_written_softmax():
    queries, docs = _embeddings()
    loss = InfoNCELoss(scale=20.0)(queries, docs, torch.arange(4))
    q, d = F.normalize(queries, dim=-1), F.normalize(docs, dim=-1)
    expected = 0.0
    for i in range(4):
        scores = [20.0 * float(q[i] @ d[j]) for j in range(len(d))]
        expected += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    assert loss.item() == pytest.approx(expected / 4, rel=1e-5)


def test_shuffled_positives_raise_the_loss():
    queries, docs = _embeddings()
    loss = InfoNCELoss()
    aligned = loss(queries, docs, torch.arange(4))
    shuffled = loss(queries, docs, torch.tensor([1, 2, 3, 0]))
    assert shuffled > aligned + 1.0


def test_scale_is_used():
    queries, docs = _embeddings()
    assert InfoNCELoss(scale=50)(queries, docs, torch.arange(4)) != InfoNCELoss(scale=20)(queries, docs, torch.arange(4))


def test_groups_restrict_the_softmax_to_their_own_documents():
    queries, docs = _embeddings(q=4, n_neg=1)
    groups = torch.tensor([0, 0, 1, 1])
    doc_groups = torch.cat([groups, groups])  # positives then one negative per query
    grouped = InfoNCELoss()(queries, docs, torch.arange(4), groups, doc_groups)
    # the same as two separate losses over each group's documents, averaged
    parts = []
    for g in (0, 1):
        rows = (groups == g).nonzero().flatten()
        cols = (doc_groups == g).nonzero().flatten()
        labels = torch.tensor([int((cols == r).nonzero()) for r in rows])
        parts.append(InfoNCELoss()(queries[rows], docs[cols], labels))
    torch.testing.assert_close(grouped, torch.stack(parts).mean())


def test_registry_and_bad_scale():
    assert isinstance(build_loss("info_nce", scale=5), InfoNCELoss)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("triplet")
    with pytest.raises(ValueError, match="scale"):
        InfoNCELoss(scale=0)
