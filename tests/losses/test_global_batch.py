"""The loss over the whole contrastive batch, from embeddings alone (one process: the gather is the identity)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from poolattn.losses import InfoNCELoss, global_batch_loss, text_keys


def _batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    # 4 queries, their 4 positives, 3 negatives owned by queries 0, 2 and 3; dimension 8
    reps = torch.randn(11, 8, generator=generator)
    owner = torch.tensor([0, 2, 3])
    keys = text_keys([[i, i + 1] for i in range(7)], torch.device("cpu"))  # 7 distinct documents
    return reps, owner, keys


def _loss_by_hand(reps: torch.Tensor, queries: list[int], documents: list[int], positive: dict[int, int], scale: float):
    """Mean over `queries` of -log softmax(scale * cos) at the query's positive, over `documents` only."""
    unit = F.normalize(reps, dim=-1)
    terms = []
    for q in queries:
        logits = scale * torch.stack([unit[q] @ unit[d] for d in documents])
        terms.append(-torch.log_softmax(logits, dim=0)[documents.index(positive[q])])
    return torch.stack(terms).mean()


def test_the_global_batch_is_one_softmax_over_every_document():
    reps, owner, keys = _batch()
    loss, group, documents = global_batch_loss(InfoNCELoss(10.0), reps, 4, owner, keys)
    expected = _loss_by_hand(reps, [0, 1, 2, 3], list(range(4, 11)), {q: 4 + q for q in range(4)}, 10.0)
    torch.testing.assert_close(loss, expected)
    assert (group, documents) == (4, 7)


def test_groups_of_records_are_softmaxes_of_their_own():
    # group_size 2: queries 0-1 see positives 4-5 and query 0's negative (8); queries 2-3 see 6-7 and negatives 9, 10
    reps, owner, keys = _batch(1)
    loss, group, _ = global_batch_loss(InfoNCELoss(10.0), reps, 4, owner, keys, group_size=2)
    first = _loss_by_hand(reps, [0, 1], [4, 5, 8], {0: 4, 1: 5}, 10.0)
    second = _loss_by_hand(reps, [2, 3], [6, 7, 9, 10], {2: 6, 3: 7}, 10.0)
    torch.testing.assert_close(loss, (first + second) / 2)
    assert group == 2
    whole, _, _ = global_batch_loss(InfoNCELoss(10.0), reps, 4, owner, keys)
    assert not torch.isclose(loss, whole)  # negative control: the groups really narrow the softmax


def test_text_keys_are_equal_exactly_for_equal_token_ids():
    keys = text_keys([[1, 2, 3], [1, 2, 3], [1, 2], [3, 2, 1], [12, 3], [1, 23]], torch.device("cpu"))
    assert keys.dtype == torch.long
    assert keys[0] == keys[1]
    assert len(set(keys[1:].tolist())) == 5  # a prefix, a permutation, and "12,3" vs "1,23" all differ
