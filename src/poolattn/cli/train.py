"""`poolattn train`: contrastive LoRA training of one design.

Accepts the paper's command line verbatim (its `model1_trainer.py ... --dataset_name ... --bf16 ...`), with
`poolattn train --design N` in place of the script. Precedence: defaults < --design < --config file < flags.
"""

from __future__ import annotations

import argparse
from typing import Any

from poolattn.config import Config, ConfigError, load_yaml, merge, unflatten
from poolattn.designs import get_design

# flag -> (config key, type, help). Names follow the paper / TrainingArguments where one exists.
FLAGS: dict[str, tuple[str, Any, str]] = {
    # model
    "--model_name_or_path": ("model.backbone", str, "backbone: offline name (smollm2-135m), hub id or folder"),
    "--max_seq_length": ("model.max_length", int, "max tokens per text, EOS included"),
    "--torch_dtype": ("model.dtype", str, "backbone weights: auto, float32, bfloat16, float16"),
    "--attention": ("model.attention", str, "causal or bidirectional (overrides --design)"),
    "--pooling": ("model.pooling.name", str, "eos, mean, latent, multilayer (overrides --design)"),
    "--pooling_preset": ("model.pooling.preset", str, "compact (sized for the backbone) or paper (the 1.28B head)"),
    "--pooling_init": ("model.pooling.init", str, "trainable pooling: paper (random start) or residual (starts "
                       "as its fixed counterpart)"),
    "--num_latents": ("model.pooling.num_latents", int, "trainable pooling: number of latents"),
    "--pooling_heads": ("model.pooling.num_heads", int, "trainable pooling: attention heads"),
    "--pooling_head_dim": ("model.pooling.head_dim", int, "trainable pooling: size of each head"),
    "--lora_r": ("model.lora.r", int, "LoRA rank"),
    "--lora_alpha": ("model.lora.alpha", int, "LoRA alpha"),
    "--lora_dropout": ("model.lora.dropout", float, "LoRA dropout"),
    "--attn_implementation": ("model.attn_implementation", str, "sdpa, eager or flash_attention_2"),
    # loss
    "--loss_scale": ("loss.scale", float, "1 / temperature of the InfoNCE loss (default 50)"),
    "--contrastive_batch": ("loss.contrastive_batch", str, "global (whole batch, default) or per_device (paper's code)"),
    "--grad_cache_chunk_size": ("loss.grad_cache_chunk_size", int, "records per forward pass"),
    # data
    "--dataset_name": ("data.dataset_name", str, "Hugging Face dataset (or a local file)"),
    "--dataset_file_path": ("data.dataset_file_path", str, "local .json / .jsonl / .jsonl.gz training triples"),
    "--dataset_split": ("data.dataset_split", str, "dataset split"),
    "--on_bad_record": ("data.on_bad_record", str, "error (default) or skip (and report the count)"),
    "--max_records": ("data.max_records", int, "use at most this many training records"),
    "--holdout": ("data.holdout", int, "records held back for the in-training retrieval check"),
    # schedule (TrainingArguments names)
    "--output_dir": ("train.output_dir", str, "where checkpoints and the final model go"),
    "--per_device_train_batch_size": ("train.per_device_train_batch_size", int, "records per device per forward"),
    "--per_device_eval_batch_size": ("train.per_device_eval_batch_size", int, "batch size for the held-out check"),
    "--gradient_accumulation_steps": ("train.gradient_accumulation_steps", int,
                                      "multiplies the contrastive batch (GradCache keeps memory flat)"),
    "--learning_rate": ("train.learning_rate", float, "peak learning rate"),
    "--head_learning_rate": ("train.head_learning_rate", float,
                             "peak learning rate of the trainable pooling head (default: --learning_rate)"),
    "--weight_decay": ("train.weight_decay", float, "AdamW weight decay"),
    "--max_grad_norm": ("train.max_grad_norm", float, "gradient clipping"),
    "--max_steps": ("train.max_steps", int, "optimizer steps (overrides epochs)"),
    "--num_train_epochs": ("train.num_train_epochs", float, "epochs when --max_steps is not set"),
    "--warmup_steps": ("train.warmup_steps", int, "linear warmup steps"),
    "--lr_scheduler_type": ("train.lr_scheduler_type", str, "linear, cosine, constant, ..."),
    "--logging_steps": ("train.logging_steps", float, "log every N steps"),
    "--save_steps": ("train.save_steps", float, "checkpoint every N steps"),
    "--save_total_limit": ("train.save_total_limit", int, "keep at most N checkpoints"),
    "--seed": ("train.seed", int, "random seed"),
    "--report_to": ("train.report_to", str, "none, tensorboard, ..."),
    "--resume_from_checkpoint": ("train.resume_from_checkpoint", str, "a checkpoint folder, or 'latest'"),
    "--dataloader_num_workers": ("train.dataloader_num_workers", int, "tokenisation workers"),
    "--deepspeed": ("train.deepspeed", str, "DeepSpeed JSON config (or use accelerate's config)"),
    "--eval_steps": ("train.eval_steps", int, "held-out check every N steps (0: before and after only)"),
    "--train_attn_implementation": ("train.attn_implementation", str, "attention kernel for training only"),
}
SWITCHES: dict[str, tuple[str, str]] = {
    "--bf16": ("train.bf16", "bfloat16 autocast"),
    "--fp16": ("train.fp16", "float16 autocast"),
    "--gradient_checkpointing": ("train.gradient_checkpointing", "recompute activations to save memory"),
    "--skip_nonfinite": ("train.skip_nonfinite", "skip a batch whose loss is NaN/inf instead of stopping"),
    "--strict": ("data.strict", "an unknown field in a training record is an error, not a warning"),
    "--overwrite_output_dir": ("train.overwrite_output_dir", "replace a previous run in --output_dir"),
    "--disable_tqdm": ("train.disable_tqdm", "no progress bar"),
    "--trust_remote_code": ("model.trust_remote_code", "run the backbone's own Python code (hub models that need it)"),
    "--grad_cache": ("loss.grad_cache", "two-pass GradCache (default: when a step holds more than one chunk)"),
}
# help groups, by config section; the held-out check's flags go with evaluation
_GROUPS = {"model": "model", "loss": "loss", "data": "data", "train": "training"}
_EVALUATION_KEYS = {"data.holdout", "train.eval_steps", "train.per_device_eval_batch_size"}
_PATH_KEYS = {"train.output_dir", "data.dataset_file_path", "train.deepspeed", "train.resume_from_checkpoint"}
_METAVARS = {int: "N", float: "FLOAT", str: "NAME"}
# what an unset (None) default means, where "none" would not say
_NONE_MEANS = {
    "model.pooling.num_latents": "from --pooling_preset", "model.pooling.num_heads": "from --pooling_preset",
    "model.pooling.head_dim": "from --pooling_preset", "loss.grad_cache_chunk_size": "--per_device_train_batch_size",
    "data.dataset_name": "the bundled training set", "data.max_records": "all",
    "train.save_total_limit": "keep all", "train.attn_implementation": "--attn_implementation",
    "train.bf16": "on exactly when the weights are bfloat16",
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _switch(value: str | None, flag: str = "a switch") -> bool:
    """`--bf16` alone means true; `--bf16 False` is accepted too, as HfArgumentParser does."""
    if value is None:
        return True
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{flag} {value!r}: expected true or false (or the flag alone for true)")


def _config_default(key: str) -> Any:
    """The built-in default of a dotted config key (before --design and --config change it)."""
    value: Any = Config()
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _with_default(help_text: str, key: str) -> str:
    if "default" in help_text:
        return help_text
    value = _config_default(key)
    if value is None:
        value = _NONE_MEANS.get(key, "none")
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f"{help_text} (default: {value})"


def _group(groups: dict[str, argparse._ArgumentGroup], key: str) -> argparse._ArgumentGroup:
    return groups["evaluation"] if key in _EVALUATION_KEYS else groups[_GROUPS[key.split(".")[0]]]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--design, --config and every flag of FLAGS/SWITCHES (shared by `train` and `study`), grouped by section.

    Flags default to None so that only the ones given override the config; the help shows the built-in default
    (a --design or --config file may change it).
    """
    parser.add_argument("--design", default=None, metavar="DESIGN",
                        help="1-5 or a name such as latent-bidirectional (default: eos pooling, causal attention: design 1)")
    parser.add_argument("--config", default=None, metavar="PATH", help="YAML config file (default: none)")
    groups = {name: parser.add_argument_group(f"{name} options")
              for name in ("model", "loss", "data", "training", "evaluation")}
    for flag, (key, kind, help_text) in FLAGS.items():
        metavar = "PATH" if key in _PATH_KEYS else _METAVARS.get(kind, "VALUE")
        _group(groups, key).add_argument(flag, type=kind, default=None, dest=key, metavar=metavar,
                                         help=_with_default(help_text, key))
    for flag, (key, help_text) in SWITCHES.items():
        _group(groups, key).add_argument(flag, nargs="?", const=None, default=argparse.SUPPRESS, type=str, dest=key,
                                         help=_with_default(help_text, key), metavar="BOOL")


def config_from_args(args: argparse.Namespace):
    """defaults < --design < --config < explicit flags."""
    config = Config()
    if args.design is not None:
        config = merge(config, get_design(args.design).overrides())
    if args.config:
        data = load_yaml(args.config)
        try:
            config = merge(config, data)
        except ConfigError as exc:
            raise ConfigError(f"config file {args.config!r}: {exc}") from None
    flags: dict[str, Any] = {}
    switch_flags = {key: flag for flag, (key, _) in SWITCHES.items()}
    for key, value in vars(args).items():
        if "." not in key:
            continue
        if key in switch_flags:
            flags[key] = _switch(value, switch_flags[key])
        elif value is not None:
            flags[key] = value
    if flags:
        config = merge(config, unflatten(flags))
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.dry_run:
        print(config.to_yaml(), end="")
        return 0
    # lazy: transformers' Trainer and torch (~12 s to import), see the cli package docstring
    from poolattn.training.run import train

    result = train(config)
    print(f"trained {result.steps} steps in {result.seconds:.0f}s; final loss {result.final_loss}; "
          f"model saved to {result.output_dir}")
    if result.holdout:
        before, after = result.holdout["before"], result.holdout["after"]
        print(f"held-out recall@1 {before['recall@1']:.3f} -> {after['recall@1']:.3f}, "
              f"MRR {before['mrr']:.3f} -> {after['mrr']:.3f}")
    return 0
