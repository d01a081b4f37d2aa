"""Measured throughput of the real work: encoding batches and contrastive training steps, in tokens per second.

Used by `poolattn doctor` (what this machine does) and by the study's ETA (how long the planned work takes). Both
time the model the run itself builds (same backbone, dtype, max length, batch, LoRA and head), after one untimed
warm-up call, so first-call set-up (kernel selection, allocator growth) is not counted as throughput.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from poolattn.config import Config


@dataclass(frozen=True)
class Rate:
    """`items` (texts, or training steps) holding `tokens` real tokens took `seconds`."""

    items: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    @property
    def seconds_per_item(self) -> float:
        return self.seconds / max(self.items, 1)


def sample_texts(count: int, *, seed: int = 0) -> list[str]:
    """`count` texts of the bundled training set (queries, positives and negatives alike), evenly spaced."""
    from poolattn.data.records import bundled_training_set

    records = bundled_training_set()
    texts: list[str] = []
    stride = max(1, len(records) // max(count, 1))
    for i in range(seed % stride, len(records), stride):
        record = records[i]
        texts += [record.query, record.positive, *record.negatives]
        if len(texts) >= count:
            break
    return texts[:count]


def time_encode(model, texts: Sequence[str], *, batch_size: int = 32,
                instructions: Sequence[str | None] | None = None) -> Rate:
    """One `Embedder.encode` of `texts` (after a one-batch warm-up); tokens are the real ones, EOS included."""
    instructions = list(instructions) if instructions is not None else [None] * len(texts)
    items = model.text_tokenizer.tokenize(list(texts), instructions)
    tokens = sum(len(item.ids) for item in items)
    model.encode(list(texts[:batch_size]), instruction=instructions[:batch_size], batch_size=batch_size,
                 show_progress=False)
    start = time.perf_counter()
    model.encode(list(texts), instruction=instructions, batch_size=batch_size, show_progress=False)
    return Rate(len(texts), tokens, time.perf_counter() - start)


def time_train_steps(config: Config, steps: int = 2, *, model=None, warmup: int = 1) -> Rate:
    """`steps` contrastive optimizer steps of `config` (loss path, batch, precision as `poolattn train` runs
    them) after `warmup` untimed ones; returns the timed steps and their real tokens.

    The Trainer's own bookkeeping (logging, the scheduler) is left out: it is small against a CPU step.
    """
    from poolattn.data.collator import TripletCollator
    from poolattn.data.sampler import SourceBatchSampler
    from poolattn.model import Embedder
    from poolattn.training.run import build_step, load_training_data, training_precision

    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    _, autocast = training_precision(config)
    if model is None:
        model = Embedder.from_config(config.model, purpose="train")
        if config.train.attn_implementation and config.train.attn_implementation != config.model.attn_implementation:
            model.backbone.get_base_model().set_attn_implementation(config.train.attn_implementation)
    model.train()
    dataset = load_training_data(config)
    records = config.train.per_device_train_batch_size * config.train.gradient_accumulation_steps
    sampler = SourceBatchSampler(dataset.sources if len(dataset.sources) == len(dataset) else [None] * len(dataset),
                                 records, seed=config.train.seed, same_source=config.data.same_source_batches)
    collator = TripletCollator(model.text_tokenizer)
    step = build_step(config, model.text_tokenizer.collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.train.learning_rate)
    batches = iter(sampler)
    tokens, start = 0, 0.0
    for i in range(steps + warmup):
        if i == warmup:
            tokens, start = 0, time.perf_counter()
        batch = collator([dataset[j] for j in next(batches)])
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=autocast):
            result = step(model, batch)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += result.tokens
    return Rate(steps, tokens, time.perf_counter() - start)
