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


def test_a_copy_of_the_positive_is_masked_out_of_the_softmax():
    # query 0's positive appears again as the hard negative of query 2 (same text, hence same embedding and key)
    queries, docs = _embeddings(q=4, n_neg=1)
    docs[6] = docs[0]
    keys = torch.tensor([10, 11, 12, 13, 20, 21, 10, 23])  # document 6 has the text of document 0
    loss = InfoNCELoss(scale=5.0)  # a low scale, so every document's term matters to every query
    masked = loss(queries, docs, torch.arange(4), document_keys=keys)
    keep = [j for j in range(8) if j != 6]
    without = loss(queries, docs[keep], torch.arange(4))
    torch.testing.assert_close(masked, without, rtol=1e-6, atol=0)
    # negative control: unmasked, the copy competes with query 0's positive and raises the loss
    assert loss(queries, docs, torch.arange(4)) > without + 0.05


def test_a_positive_shared_by_two_queries_is_not_a_negative_of_either():
    queries, docs = _embeddings(q=3, n_neg=0)
    docs[2] = docs[0]
    keys = torch.tensor([5, 6, 5])  # queries 0 and 2 have the same positive text
    loss = InfoNCELoss(scale=5.0)
    masked = loss(queries, docs, torch.arange(3), document_keys=keys)
    # each query's softmax holds each distinct text once: its own positive, then the other texts
    parts = [loss(queries[[i]], docs[cols], torch.tensor([cols.index(i)]))
             for i, cols in ((0, [0, 1]), (1, [0, 1]), (2, [1, 2]))]
    torch.testing.assert_close(masked, torch.stack(parts).mean(), rtol=1e-6, atol=0)
