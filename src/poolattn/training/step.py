"""One contrastive step over the whole batch: length-sorted chunks, optional gradient caching, cross-device gather.

The contrastive batch is everything this step sees on every process (per-device batch x gradient accumulation x
processes); the paper's code let each softmax see only one micro-batch. Texts are embedded in chunks sorted by
length (little padding), and:

- plain (`grad_cache=False`): every chunk keeps its graph, the loss back-propagates once. Fastest; memory grows
  with the batch.
- GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup"): embed
  every chunk without a graph, compute the loss and its gradient with respect to the embeddings, then re-run each
  chunk with a graph and push the cached gradient through it. Memory of one chunk, about 1.3x the compute; the
  gradients equal the plain ones (dropout masks are replayed from saved RNG states).

Either way the step returns ONE tensor for ONE backward call: its value is the loss, its gradient is the full
gradient. Chunks other than the last run through the unwrapped module and their parameter gradients are
collected with `torch.autograd.grad` (no DDP/DeepSpeed hooks fire); the last chunk runs through the wrapped model,
so DDP all-reduces and DeepSpeed reduces exactly once per step, as after any single forward/backward.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from poolattn.errors import UsageError
from poolattn.features import Tokenized
from poolattn.losses.gather import world_size
from poolattn.losses.global_batch import global_batch_loss, text_keys


class NonFiniteLossError(UsageError, FloatingPointError):
    """The loss of a batch is NaN or infinite; raised before any gradient touches the weights."""

    def __init__(self, value: float, record_ids: Sequence[str], step: int | None = None) -> None:
        self.value, self.record_ids, self.step = value, list(record_ids), step
        where = f"at step {step} " if step is not None else ""
        shown = ", ".join(map(str, self.record_ids[:20])) + (" ..." if len(self.record_ids) > 20 else "")
        super().__init__(
            f"non-finite loss ({value}) {where}on the batch with records [{shown}]; the weights were not updated. "
            "Check those records, lower the learning rate or loss scale, or pass --skip_nonfinite to skip such batches."
        )


@dataclass
class StepResult:
    """What one contrastive step produced: a tensor to back-propagate, and numbers to log."""

    loss: Tensor
    value: float
    finite: bool
    tokens: int
    contrastive_batch: int
    documents: int
    extra: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _replay(state: tuple[Tensor, list[Tensor] | None]) -> Iterator[None]:
    """Run the block with a saved RNG state (same dropout masks as the first pass), then restore the current one."""
    cpu, cuda = state
    devices = list(range(torch.cuda.device_count())) if cuda is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        yield


def _rng_state() -> tuple[Tensor, list[Tensor] | None]:
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module under DDP / DeepSpeed wrappers (both keep it in `.module`)."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


class ContrastiveStep:
    """Embeds a batch of (query, positive, negatives) and returns the loss over the global contrastive batch.

    `loss` is any module taking (queries, documents, labels, query_groups, document_groups, document_keys=...)
    such as `InfoNCELoss`; the step embeds, and `losses.global_batch_loss` gathers the embeddings and document
    keys across processes and calls it. `chunk_size` is the number of records' texts per forward pass.
    `group_size` (records) turns on the paper's per-device softmax: each group of `group_size` consecutive records
    on a device is its own contrastive batch.
    """

    def __init__(
        self,
        loss: nn.Module,
        *,
        chunk_size: int,
        grad_cache: bool,
        group_size: int | None = None,
        collate: Callable[[Sequence[Tokenized]], dict[str, Tensor]],
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size} must be >= 1")
        self.loss = loss
        self.chunk_size = chunk_size
        self.grad_cache = grad_cache
        self.group_size = group_size
        self.collate = collate

    # ------------------------------------------------------------------------------------------ helpers
    def _chunks(self, texts: Sequence[Tokenized], records: int) -> list[list[int]]:
        """Indices of `texts` in length order, cut into one chunk per `chunk_size` records."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i].ids))
        count = max(1, math.ceil(records / self.chunk_size))
        bounds = [round(i * len(order) / count) for i in range(count + 1)]
        return [order[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]

    def _embed(self, module: nn.Module, texts: Sequence[Tokenized], rows: list[int], device: torch.device) -> Tensor:
        features = {k: v.to(device) for k, v in self.collate([texts[i] for i in rows]).items()}
        return module(**features)

    # --------------------------------------------------------------------------------------------- step
    def __call__(self, model: nn.Module, batch: dict, *, skip_nonfinite: bool = False) -> StepResult:
        queries, positives, negatives = batch["queries"], batch["positives"], batch["negatives"]
        n = len(queries)
        if len(positives) != n:
            raise ValueError(f"batch has {n} queries but {len(positives)} positives")
        texts = [*queries, *positives, *negatives]
        inner = _unwrap(model)
        device = self._device = next(inner.parameters()).device
        owner = torch.tensor(batch.get("negative_owner", []), dtype=torch.long, device=device)
        keys = text_keys([t.ids for t in [*positives, *negatives]], device)
        chunks = self._chunks(texts, n)
        tokens = sum(len(t.ids) for t in texts)
        world = world_size()
        inverse = torch.empty(len(texts), dtype=torch.long, device=device)
        inverse[torch.tensor([i for c in chunks for i in c], device=device)] = torch.arange(len(texts), device=device)

        if not self.grad_cache:
            embeddings = [self._embed(inner if k < len(chunks) - 1 else model, texts, c, device)
                          for k, c in enumerate(chunks)]
            reps = torch.cat(embeddings)[inverse]  # back to batch order, graph kept
            loss, group, docs = global_batch_loss(self.loss, reps, n, owner, keys, self.group_size)
            value = float(loss.detach())
            if not math.isfinite(value):
                return self._non_finite(value, batch, skip_nonfinite, group, docs, tokens)
            # DDP averages gradients over ranks; each rank holds the exact gradient of its own slice
            backward = loss * world
            return StepResult(backward - backward.detach() + loss.detach(), value, True, tokens, group, docs)

        states = []
        with torch.no_grad():
            cached = []
            for c in chunks:
                states.append(_rng_state())
                cached.append(self._embed(inner, texts, c, device))
        reps = torch.cat(cached)[inverse].detach().requires_grad_()
        loss, group, docs = global_batch_loss(self.loss, reps, n, owner, keys, self.group_size)
        value = float(loss.detach())
        if not math.isfinite(value):
            return self._non_finite(value, batch, skip_nonfinite, group, docs, tokens)
        (grad,) = torch.autograd.grad(loss, reps)
        grad = grad * world
        params = [p for p in inner.parameters() if p.requires_grad]
        collected: list[Tensor | None] = [None] * len(params)
        for k, c in enumerate(chunks[:-1]):
            rows = torch.tensor(c, device=device)
            with _replay(states[k]):
                emb = self._embed(inner, texts, c, device)
            grads = torch.autograd.grad(emb, params, grad_outputs=grad[rows], allow_unused=True)
            collected = [g if acc is None else (acc if g is None else acc + g) for acc, g in zip(collected, grads)]
        rows = torch.tensor(chunks[-1], device=device)
        with _replay(states[-1]):
            emb = self._embed(model, texts, chunks[-1], device)
        surrogate = (emb.float() * grad[rows]).sum()
        for param, acc in zip(params, collected):
            if acc is not None:
                surrogate = surrogate + (param * acc.to(param.dtype)).sum()
        return StepResult(surrogate - surrogate.detach() + loss.detach(), value, True, tokens, group, docs)

    def _non_finite(
        self, value: float, batch: dict, skip: bool, group: int, docs: int, tokens: int
    ) -> StepResult:
        if not skip:
            raise NonFiniteLossError(value, batch.get("ids", []))
        # A leaf that touches no parameter: backward leaves every .grad as None, so the optimizer skips them all.
        dummy = torch.zeros((), device=self._device, requires_grad=True)
        return StepResult(dummy, value, False, tokens, group, docs)
