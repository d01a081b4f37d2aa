"""The training recipe's parts, each built in one place: the contrastive step, the batch order, the precision, the
optimizer and its schedule.

`train` (run.py) hands them to the Trainer (`PoolattnTrainer` builds its optimizer and schedule here), and the
timing that `poolattn doctor` and the study's ETA run (speed.py) uses the same parts without the Trainer, so a
measured step is the step a run takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from transformers import Trainer, TrainingArguments, get_scheduler
from transformers.trainer_pt_utils import get_parameter_names

from poolattn.backbone import offline
from poolattn.backbone.load import default_device, resolve_dtype
from poolattn.config import Config
from poolattn.data.collator import TripletCollator
from poolattn.data.records import TripleDataset
from poolattn.data.sampler import SourceBatchSampler
from poolattn.features import Tokenized
from poolattn.losses import build_loss
from poolattn.training.step import ContrastiveStep

# Parameters left out of weight decay (transformers' Trainer rule): biases and normalisation weights.
HEAD_PREFIX = "pooler."  # the trainable pooling head's parameters in an `Embedder`
NO_DECAY = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def contrastive_batch(config: Config, world_size: int) -> int:
    """Texts' records in one softmax: the per-device batch (the paper's code), or every process's whole batch."""
    if config.loss.contrastive_batch == "per_device":
        return config.train.per_device_train_batch_size
    return config.train.local_batch * world_size


def build_step(config: Config, collate: Callable[[Sequence[Tokenized]], dict[str, Tensor]]) -> ContrastiveStep:
    """The loss path: GradCache when the per-device contrastive batch is larger than one forward chunk (or as set)."""
    train, loss = config.train, config.loss
    chunk = loss.grad_cache_chunk_size or train.per_device_train_batch_size
    group = train.per_device_train_batch_size if loss.contrastive_batch == "per_device" else None
    grad_cache = loss.grad_cache if loss.grad_cache is not None else train.local_batch > chunk
    return ContrastiveStep(
        build_loss(loss.name, scale=loss.scale), chunk_size=chunk, grad_cache=grad_cache,
        group_size=group, collate=collate,
    )


def batch_sampler(config: Config, dataset: TripleDataset) -> SourceBatchSampler:
    """The training order: seeded batches of per-device x accumulation records, one source each when configured."""
    return SourceBatchSampler(
        dataset.sources if len(dataset.sources) == len(dataset) else [None] * len(dataset),
        config.train.local_batch, seed=config.train.seed, same_source=config.data.same_source_batches,
    )


def batch_tokens(config: Config, dataset: TripleDataset, tokenizer, steps: int) -> list[int]:
    """Real tokens (EOS included, as a training step counts them) of each of the first `steps` training batches,
    in the recipe's order; a new epoch reshuffles, as the Trainer's set_epoch does."""
    collate, sampler, counts = TripletCollator(tokenizer), batch_sampler(config, dataset), []
    while len(counts) < steps and len(sampler):
        sampler.set_epoch(len(counts) // len(sampler))
        for indices in sampler:
            batch = collate([dataset[i] for i in indices])
            counts.append(sum(len(t.ids) for part in ("queries", "positives", "negatives") for t in batch[part]))
            if len(counts) == steps:
                break
    return counts


def planned_steps(config: Config, batches_per_epoch: int) -> int:
    """Optimizer steps of a run: `max_steps`, or epochs x batches per epoch rounded up, as the Trainer counts."""
    if config.train.max_steps > 0:
        return config.train.max_steps
    return math.ceil(config.train.num_train_epochs * batches_per_epoch)


def training_precision(config: Config) -> tuple[str, bool]:
    """(backbone weights dtype, bfloat16 autocast on?) for training `config` on this machine.

    `model.dtype: auto` is measured for training (forward and backward), which may choose differently from
    encoding. `train.bf16` unset follows the weights: autocast exactly when they are bfloat16, so the float32
    LoRA products run in bfloat16 too; an `auto` that resolves to float32 trains wholly in float32.
    """
    location = offline.resolve(config.model.backbone)
    dtype = resolve_dtype(config.model.dtype, default_device(), location=location, purpose="train",
                          trust_remote_code=config.model.trust_remote_code)
    name = str(dtype).removeprefix("torch.")
    autocast = config.train.bf16 if config.train.bf16 is not None else dtype == torch.bfloat16
    return name, bool(autocast)


def use_training_kernel(model: nn.Module, config: Config) -> None:
    """Switch an `Embedder`'s backbone to `train.attn_implementation` where it differs from the encoding kernel."""
    if config.train.attn_implementation and config.train.attn_implementation != config.model.attn_implementation:
        model.backbone.get_base_model().set_attn_implementation(config.train.attn_implementation)


def build_optimizer(model: nn.Module, args: TrainingArguments,
                    head_learning_rate: float | None = None) -> torch.optim.Optimizer:
    """The optimizer `args.optim` names (AdamW by default) over the trainable parameters; biases and norms get no
    weight decay, and the pooling head's parameters (`pooler.*`) get `head_learning_rate` where it is set."""
    decay = set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY))
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    # without a head rate: the same two groups as always, so a checkpoint's optimizer state still loads
    parts = [({}, lambda name: True)] if head_learning_rate is None else [
        ({}, lambda name: not name.startswith(HEAD_PREFIX)),
        ({"lr": head_learning_rate}, lambda name: name.startswith(HEAD_PREFIX))]
    groups = [{"params": [p for name, p in trainable if chosen(name) and (name in decay) == decays],
               "weight_decay": args.weight_decay if decays else 0.0, **rate}
              for rate, chosen in parts for decays in (True, False)]
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return optimizer_cls(groups, **kwargs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, args: TrainingArguments, num_training_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule `args.lr_scheduler_type` names, with `args`' warmup, over `num_training_steps`."""
    return get_scheduler(
        args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=args.get_warmup_steps(num_training_steps),
        num_training_steps=num_training_steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
