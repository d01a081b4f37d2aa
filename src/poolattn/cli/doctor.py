"""`poolattn doctor`: what this machine does with poolattn, one `key=value` per line.

The first thing to ask a user who reports slowness: torch's CPU capability and threads, float32 and bfloat16
matmul GFLOP/s at the backbone's layer shapes, the dtypes `auto` picks for encoding and training, the padded
positions a CPU encoding pass may hold (measured per machine), and the measured encoding and training tokens/s
of design 1 on the backbone in those dtypes: by default with the library's default training settings (LoRA on
every layer, dropout 0.1), with `--config` with a config's (`--config configs/demo.yaml`: what the embedded study
trains with).
"""

from __future__ import annotations

import argparse

from poolattn.backbone import offline
from poolattn.config import load_config, merge
from poolattn.designs import get_design


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="measure this YAML config's training and encoding settings "
                        "(e.g. configs/demo.yaml) with design 1, instead of the library defaults")
    parser.add_argument("--backbone", default=None, help="backbone to measure (default: the config's, smollm2-135m)")
    parser.add_argument("--max-length", type=int, default=None, help="max tokens per text (default: the config's "
                        "with --config, else 128)")
    parser.add_argument("--batch-size", type=int, default=None, help="records per training step, texts per encode "
                        "batch x4 (default: the config's with --config, else 8)")
    parser.add_argument("--texts", type=int, default=128, help="texts to encode for encode_tokens_per_s")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps (after one untimed)")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 1 else f"{value:.3g}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    # lazy, like every command's torch-side imports: see the cli package docstring for the measured costs
    import torch
    from transformers import AutoConfig

    from poolattn.backbone.dtype import LayerShapes, auto_choice, measure
    from poolattn.backbone.load import default_device
    from poolattn.model import Embedder
    from poolattn.speed import sample_texts, time_encode, time_train_steps

    base = load_config(args.config)
    overrides: dict = {"model": {"dtype": "auto"}, "train": {"bf16": None}}  # the dtypes auto picks, autocast to match
    if args.backbone:
        overrides["model"]["backbone"] = args.backbone
    if args.max_length or not args.config:
        overrides["model"]["max_length"] = args.max_length or 128
    if args.batch_size or not args.config:
        overrides["train"]["per_device_train_batch_size"] = args.batch_size or 8
    config = merge(merge(base, get_design(1).overrides()), overrides)
    device = default_device()
    location = offline.resolve(config.model.backbone)
    encode_choice = auto_choice(location, device, "encode")
    train_choice = auto_choice(location, device, "train")
    # the matmul figures of the encode measurement; measured here when auto did not time (a small model, CUDA)
    gflops = encode_choice.gflops or measure(LayerShapes.from_config(AutoConfig.from_pretrained(location)), "encode")
    lines: dict[str, object] = {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "device": device.type,
        "float32_gflops": gflops["float32"],
        "bfloat16_gflops": gflops["bfloat16"],
        "encode_dtype": encode_choice.dtype,
        "train_dtype": train_choice.dtype,
        "dtype_reason": encode_choice.reason,
    }
    for key, value in lines.items():
        print(f"{key}={_fmt(value)}", flush=True)
    model = Embedder.from_config(config.model).merge_lora()
    batch = config.eval.batch_size if args.config and not args.batch_size else 4 * (args.batch_size or 8)
    rate = time_encode(model, sample_texts(args.texts), batch_size=batch)
    if device.type == "cpu":
        print(f"encode_pass_tokens={model.pass_tokens()}", flush=True)
    print(f"encode_tokens_per_s={_fmt(rate.tokens_per_s)}", flush=True)
    del model
    rate = time_train_steps(config, args.steps)
    print(f"train_tokens_per_s={_fmt(rate.tokens_per_s)}")
    print(f"train_seconds_per_step={_fmt(rate.seconds_per_item)}")
    return 0
