"""InfoNCE over cosine similarities with in-batch and hard negatives.

Other names: contrastive loss with in-batch negatives, MultipleNegativesRankingLoss (sentence-transformers), the
loss of E5-Mistral and of the paper. Each query's positive competes with every other document in the contrastive
batch: the other queries' positives and all hard negatives. scale = 1 / temperature (the paper intended 50; its
code silently ran 20). Similarities and the loss are computed in float32.

Repeated texts: a document with the same text as a query's own positive (a hard negative that is another
record's positive: 7,425 of the bundled set's 24,000) is a false negative that pushes the query away from its own
answer, and any other text present twice would count twice in the softmax. Given `document_keys`, every query's
softmax holds each distinct text once, its own positive at its label: the loss is that of the batch without the
copies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InfoNCELoss(nn.Module):
    """Cross-entropy of scaled cosine similarities: query i's target is document `labels[i]`.

    Inputs: `queries` (Q, D) and `documents` (M, D) embeddings (normalised or not: cosine is taken here),
    `labels` (Q,) index of each query's positive among the documents. Optional `query_groups` (Q,) and
    `document_groups` (M,) restrict each query's softmax to documents of its own group: the paper's original
    behaviour, where only one device's micro-batch formed the contrastive batch. Optional `document_keys` (M,)
    identify each document's text (equal keys = equal texts): query i's softmax leaves out every other copy of
    its positive's text and every copy but the first of any other text, so the loss is what it would be without
    the copies.
    """

    def __init__(self, scale: float = 50.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale={scale} must be > 0 (it is 1 / temperature)")
        self.scale = float(scale)

    @staticmethod
    def _copies(keys: Tensor, labels: Tensor, groups: Tensor | None) -> Tensor:
        """(Q, M) True where document j repeats a text query i already sees (its positive, or an earlier copy)."""
        same = keys[None, :] == keys[:, None]  # (M, M)
        if groups is not None:
            same &= groups[None, :] == groups[:, None]  # the first copy a query can see is in its own group
        position = torch.arange(keys.shape[0], device=keys.device)
        later = same.int().argmax(dim=1) != position  # (M,): an earlier document has the same text
        copies = later[None, :] | (keys[None, :] == keys[labels][:, None])  # (Q, M)
        copies[torch.arange(labels.shape[0], device=labels.device), labels] = False  # the positive itself stays
        return copies

    def forward(
        self,
        queries: Tensor,
        documents: Tensor,
        labels: Tensor,
        query_groups: Tensor | None = None,
        document_groups: Tensor | None = None,
        document_keys: Tensor | None = None,
    ) -> Tensor:
        q = F.normalize(queries.float(), dim=-1)
        d = F.normalize(documents.float(), dim=-1)
        logits = self.scale * q @ d.T  # (Q, M)
        if query_groups is not None and document_groups is not None:
            other_group = query_groups[:, None] != document_groups[None, :]  # (Q, M)
            logits = logits.masked_fill(other_group, float("-inf"))
        if document_keys is not None:
            logits = logits.masked_fill(self._copies(document_keys, labels, document_groups), float("-inf"))
        return F.cross_entropy(logits, labels)
