"""The contrastive loss over every process's batch, computed from this process's embeddings.

Each process holds its records' embeddings; the loss sees the whole contrastive batch: queries, positives and hard
negatives are gathered from every process (only the local slice keeps its gradient, see gather.py), each
document carries a key of its text so a copy of a query's positive is never its negative, and with `group_size`
each group of consecutive records on a process is a softmax of its own (the paper's per-device batch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from poolattn.losses.gather import gather_with_local_grad, rank


def text_keys(ids: Sequence[Sequence[int]], device: torch.device) -> Tensor:
    """(N,) int64: one key per text's token ids, equal exactly when the ids are equal, the same on every process.

    Token ids, not strings: the model cannot tell apart two texts that tokenise (and truncate) the same way.
    Python's `hash` is salted per process, so a keyed digest of the ids is used instead.
    """
    keys = [int.from_bytes(hashlib.blake2b(",".join(map(str, text)).encode(), digest_size=8).digest(), "little",
                           signed=True) for text in ids]
    return torch.tensor(keys, dtype=torch.long, device=device)


def global_batch_loss(
    loss: nn.Module,
    reps: Tensor,
    n_queries: int,
    negative_owner: Tensor,
    keys: Tensor,
    group_size: int | None = None,
) -> tuple[Tensor, int, int]:
    """(loss, texts per softmax, documents) over every process's batch.

    `reps` (N, D) = [queries (Q, D); positives (Q, D); negatives (N - 2Q, D)] of this process, `negative_owner`
    (N - 2Q,) the query each negative belongs to, `keys` (N - Q,) the documents' text keys ([positives;
    negatives], see `text_keys`). `loss` is any module taking (queries, documents, labels, query_groups,
    document_groups, document_keys=...), such as `InfoNCELoss`.
    """
    queries = gather_with_local_grad(reps[:n_queries])
    positives = gather_with_local_grad(reps[n_queries : 2 * n_queries])
    negatives = gather_with_local_grad(reps[2 * n_queries :])
    documents = torch.cat([positives, negatives])
    document_keys = torch.cat([gather_with_local_grad(keys[:n_queries]), gather_with_local_grad(keys[n_queries:])])
    labels = torch.arange(queries.shape[0], device=reps.device)
    query_groups = document_groups = None
    if group_size is not None:
        local = torch.arange(n_queries, device=reps.device) // group_size + rank() * (n_queries + 1)
        query_groups = gather_with_local_grad(local)
        negative_groups = gather_with_local_grad(local[negative_owner])
        document_groups = torch.cat([query_groups, negative_groups])
    value = loss(queries, documents, labels, query_groups, document_groups, document_keys=document_keys)
    group = group_size if group_size is not None else queries.shape[0]
    return value, group, documents.shape[0]
