"""InfoNCE over cosine similarities with in-batch and hard negatives.

Other names: contrastive loss with in-batch negatives, MultipleNegativesRankingLoss (sentence-transformers), the
loss of E5-Mistral and of the paper. Each query's positive competes with every other document in the contrastive
batch: the other queries' positives and all hard negatives. scale = 1 / temperature (the paper intended 50; its
code silently ran 20). Similarities and the loss are computed in float32.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class InfoNCELoss(nn.Module):
    """Cross-entropy of scaled cosine similarities: query i's target is document `labels[i]`.

    Inputs: `queries` (Q, D) and `documents` (M, D) embeddings (normalised or not: cosine is taken here),
    `labels` (Q,) index of each query's positive among the documents. Optional `query_groups` (Q,) and
    `document_groups` (M,) restrict each query's softmax to documents of its own group: the paper's original
    behaviour, where only one device's micro-batch formed the contrastive batch.
    """

    def __init__(self, scale: float = 50.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale={scale} must be > 0 (it is 1 / temperature)")
        self.scale = float(scale)

    def forward(
        self,
        queries: Tensor,
        documents: Tensor,
        labels: Tensor,
        query_groups: Tensor | None = None,
        document_groups: Tensor | None = None,
    ) -> Tensor:
        q = F.normalize(queries.float(), dim=-1)
        d = F.normalize(documents.float(), dim=-1)
        logits = self.scale * q @ d.T  # (Q, M)
        if query_groups is not None and document_groups is not None:
            other_group = query_groups[:, None] != document_groups[None, :]  # (Q, M)
            logits = logits.masked_fill(other_group, float("-inf"))
        return F.cross_entropy(logits, labels)
