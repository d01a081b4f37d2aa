"""GradCache equals the plain full-batch step: same loss, same LoRA and head gradients (tiny random models)."""

from __future__ import annotations

import pytest
import torch

from poolattn.config import LoraConfig, ModelConfig, PoolingConfig
from poolattn.data.collator import TripletCollator
from poolattn.data.records import Record
from poolattn.designs import get_design
from poolattn.losses import InfoNCELoss
from poolattn.training.step import ContrastiveStep, NonFiniteLossError
from poolattn.model import Embedder

RECORDS = [
    Record(str(i), f"query number {i} about topic {i % 3}", f"a document answering {i}",
           [f"an unrelated text {i * 7}"] * (i % 3), "find the answer" if i % 2 else None)
    for i in range(10)
]
# record 7 (on the second device when 2 processes split the records) also holds record 2's positive as a negative
RECORDS_WITH_COPY = [r if r.id != "7" else Record(r.id, r.query, r.positive, [RECORDS[2].positive, *r.negatives],
                                                  r.instruction) for r in RECORDS]


def make_model(path, design=5, dropout=0.0, seed=0) -> Embedder:
    d = get_design(design)
    config = ModelConfig(backbone=str(path), attention=d.attention, max_length=48, seed=seed,
                         pooling=PoolingConfig(name=d.pooling, num_latents=4),
                         lora=LoraConfig(r=4, alpha=8, dropout=dropout))
    model = Embedder.from_config(config, device="cpu").train()
    with torch.no_grad():  # non-zero LoRA B, so every LoRA parameter gets a gradient
        for name, param in model.backbone.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    return model


def assert_same_gradients(got: dict, expected: dict) -> None:
    """Equal up to float32 rounding: chunks pad differently, so sums run in another order (~1e-6 relative)."""
    assert got.keys() == expected.keys()
    for name in expected:
        scale = float(expected[name].abs().max())
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=2e-5 * scale, msg=name)


def grads_of(model, step, batch, seed=123):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    result = step(model, batch)
    result.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return result.value, grads


def make_step(model, *, chunk, grad_cache, scale=20.0, group=None):
    return ContrastiveStep(InfoNCELoss(scale), chunk_size=chunk, grad_cache=grad_cache, group_size=group,
                           collate=model.text_tokenizer.collate)


@pytest.mark.parametrize("design", [1, 3, 4])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_grad_cache_equals_plain_full_batch(tiny_llama, design, dropout):
    model = make_model(tiny_llama, design, dropout)
    batch = TripletCollator(model.text_tokenizer)(RECORDS)
    # without dropout: against one forward of the whole batch; with dropout: against the plain path cut into the
    # same chunks, so both draw the same masks (GradCache must replay them on its second pass)
    plain_chunk = len(RECORDS) if dropout == 0 else 3
    plain_value, plain = grads_of(model, make_step(model, chunk=plain_chunk, grad_cache=False), batch)
    cached_value, cached = grads_of(model, make_step(model, chunk=3, grad_cache=True), batch)
    assert cached_value == pytest.approx(plain_value, rel=1e-6)
    assert any("lora_A" in n for n in plain) and any("lora_B" in n for n in plain)
    assert any(n.startswith("pooler.") for n in plain) == (design != 1)
    assert_same_gradients(cached, plain)


def test_chunked_plain_path_equals_one_forward(tiny_llama):
    model = make_model(tiny_llama, 2)
    batch = TripletCollator(model.text_tokenizer)(RECORDS)
    one_value, one = grads_of(model, make_step(model, chunk=len(RECORDS), grad_cache=False), batch)
    chunked_value, chunked = grads_of(model, make_step(model, chunk=2, grad_cache=False), batch)
    assert chunked_value == pytest.approx(one_value, rel=1e-6)
    assert_same_gradients(chunked, one)


def test_dropout_replay_matters(tiny_llama):
    """Negative control: without replaying RNG states the GradCache gradients would differ under dropout."""
    model = make_model(tiny_llama, 1, dropout=0.2)
    batch = TripletCollator(model.text_tokenizer)(RECORDS)
    _, a = grads_of(model, make_step(model, chunk=len(RECORDS), grad_cache=False), batch, seed=1)
    _, b = grads_of(model, make_step(model, chunk=len(RECORDS), grad_cache=False), batch, seed=2)
    assert max(float((a[n] - b[n]).abs().max() / a[n].abs().max()) for n in a) > 1e-3  # far above rounding


def test_loss_sees_every_query_and_document(tiny_llama, monkeypatch):
    model = make_model(tiny_llama, 1)
    batch = TripletCollator(model.text_tokenizer)(RECORDS)
    seen = {}
    original = InfoNCELoss.forward

    def spy(self, queries, documents, labels, qg=None, dg=None, **kwargs):
        seen["shape"] = (queries.shape[0], documents.shape[0])
        seen["open"] = None if qg is None else (qg[:, None] == dg[None, :]).sum(1).tolist()
        return original(self, queries, documents, labels, qg, dg, **kwargs)

    monkeypatch.setattr(InfoNCELoss, "forward", spy)
    negatives = sum(len(r.negatives) for r in RECORDS)
    result = make_step(model, chunk=3, grad_cache=True)(model, batch)
    assert seen["shape"] == (10, 10 + negatives) and result.documents == 10 + negatives
    assert seen["open"] is None and result.contrastive_batch == 10
    # the paper's per-device softmax: groups of 5 records, each query sees its group's documents only
    result = make_step(model, chunk=3, grad_cache=True, group=5)(model, batch)
    per_group = [5 + sum(len(r.negatives) for r in RECORDS[g * 5:(g + 1) * 5]) for g in (0, 1)]
    assert seen["open"] == [per_group[0]] * 5 + [per_group[1]] * 5 and result.contrastive_batch == 5


def test_non_finite_loss_raises_before_touching_gradients(tiny_llama):
    model = make_model(tiny_llama, 2)
    batch = TripletCollator(model.text_tokenizer)(RECORDS)
    step = make_step(model, chunk=3, grad_cache=True, scale=float("inf"))
    model.zero_grad(set_to_none=True)
    with pytest.raises(NonFiniteLossError, match=r"records \[0, 1, 2"):
        step(model, batch)
    assert all(p.grad is None for p in model.parameters())
    skipped = step(model, batch, skip_nonfinite=True)
    skipped.loss.backward()
    assert not skipped.finite and all(p.grad is None for p in model.parameters())


class _Unmasked(InfoNCELoss):
    """Negative control: InfoNCE that ignores the text keys (copies of a positive stay in the softmax)."""

    def forward(self, queries, documents, labels, query_groups=None, document_groups=None, document_keys=None):
        return super().forward(queries, documents, labels, query_groups, document_groups)


@pytest.mark.parametrize("grad_cache", [False, True])
def test_a_copy_of_a_positive_among_the_negatives_changes_nothing(tiny_llama, grad_cache):
    model = make_model(tiny_llama, 2)
    collate = TripletCollator(model.text_tokenizer)
    step = make_step(model, chunk=3, grad_cache=grad_cache)
    with_copy, with_copy_grads = grads_of(model, step, collate(RECORDS_WITH_COPY))
    without, without_grads = grads_of(model, step, collate(RECORDS))
    assert with_copy == pytest.approx(without, rel=1e-6)
    assert_same_gradients(with_copy_grads, without_grads)
    unmasked = ContrastiveStep(_Unmasked(20.0), chunk_size=3, grad_cache=grad_cache, collate=collate.tokenizer.collate)
    assert grads_of(model, unmasked, collate(RECORDS_WITH_COPY))[0] > without + 1e-3
