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
from poolattn.data.collator import TripletCollator
from poolattn.data.records import bundled_training_set
from poolattn.model import Embedder
from poolattn.training.recipe import (batch_sampler, build_optimizer, build_scheduler, build_step, planned_steps,
                                     training_precision, use_training_kernel)
from poolattn.training.run import load_training_data
from poolattn.training.trainer import to_training_arguments


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
    records = bundled_training_set()
    texts: list[str] = []
    stride = max(1, len(records) // max(count, 1))
    for i in range(seed % stride, len(records), stride):
        record = records[i]
        texts += [record.query, record.positive, *record.negatives]
        if len(texts) >= count:
            break
    return texts[:count]


def time_encode(model: Embedder, texts: Sequence[str], *, batch_size: int = 32,
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


def training_model(config: Config) -> Embedder:
    """A fresh model as `train` builds it: dtype chosen for training, the training attention kernel."""
    model = Embedder.from_config(config.model, purpose="train")
    use_training_kernel(model, config)
    return model


def time_train_steps(config: Config, steps: int = 2, *, model: Embedder | None = None, warmup: int = 1) -> Rate:
    """`steps` contrastive optimizer steps of `config` after `warmup` untimed ones; returns the timed steps and their
    real tokens.

    The steps are the run's: its data in the recipe's batch order, loss path, precision, optimizer and learning-rate
    schedule (training/recipe.py), without the Trainer's own bookkeeping (logging, checkpoints), which is small
    against a CPU step.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    _, autocast = training_precision(config)
    model = model if model is not None else training_model(config)
    model.train()
    dataset = load_training_data(config)
    sampler = batch_sampler(config, dataset)
    collator = TripletCollator(model.text_tokenizer)
    step = build_step(config, model.text_tokenizer.collate)
    args = to_training_arguments(config)
    optimizer = build_optimizer(model, args, config.train.head_learning_rate)
    scheduler = build_scheduler(optimizer, args, planned_steps(config, len(sampler)))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    batches = iter(sampler)
    tokens, start = 0, 0.0
    for i in range(steps + warmup):
        if i == warmup:
            tokens, start = 0, time.perf_counter()
        batch = collator([dataset[j] for j in next(batches)])
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=autocast):
            result = step(model, batch)
        result.loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += result.tokens
    return Rate(steps, tokens, time.perf_counter() - start)
