"""CPU utilisation: how close poolattn's encoding and training come to this machine's own matmul throughput.

utilisation = model FLOPs per token x tokens/s / measured matmul FLOP/s, where
- model FLOPs per token are the decoder layers' projections (2 x their weights per token for the forward; twice
  that for a training step: the forward plus the input gradient of the frozen weights, LoRA's own products and
  the attention scores left out),
- the matmul FLOP/s are measured in the same process, at the backbone's own layer shapes, by the same code that
  decides `dtype: auto` (`poolattn.backbone.dtype.measure`): forward for encoding, forward plus input gradient
  for training.
Both dtypes are measured (only the one asked for with --dtype float32|bfloat16); `encode_cpu_utilisation` and
`train_cpu_utilisation` are the figures of the dtype `auto` picks on this machine. What is not matmul
(tokenisation, padding, norms, attention, the pooling head, the optimizer, Python) is what keeps the figure below 1.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.common import alternate, log, median
from benchmarks.contenders import adamw, build_embedder, poolattn_step
from benchmarks.data import encode_texts, fit_records, sample_records

PEAK_ROUNDS = 20  # the matmul peak is the fastest of this many interleaved rounds (the dtype choice needs 2-5)


def _shapes(folder: str) -> tuple[Any, int]:
    from transformers import AutoConfig

    from poolattn.backbone.dtype import LayerShapes

    config = AutoConfig.from_pretrained(folder)
    return LayerShapes.from_config(config), config.num_hidden_layers


def cpu_utilisation(bench) -> None:
    """Encode and train tokens/s of design 1 in float32 and bfloat16, over the measured matmul throughput."""
    from poolattn.backbone.dtype import choose_cpu_dtype, measure
    from poolattn.data.collator import TripletCollator

    s, b, r = bench.settings, bench.backbone, bench.report
    if b.folder is None:
        raise ValueError("cpu_utilisation needs a checkpoint folder (CPU mode)")
    shapes, layers = _shapes(b.folder)
    forward_flops = layers * shapes.flops_per_token
    # a quarter of the encode texts and half the training batch: bfloat16 can be many times slower than float32
    count, batch_records = max(8, s.encode_count // 4), max(4, s.train_batch // 2)
    r.note("utilisation_formula", f"{layers} layers x {shapes.flops_per_token:,} FLOPs per token forward "
           f"({shapes.describe()}; x2 for training) x tokens/s / matmul FLOP/s measured at the same shapes; "
           f"{count} texts to encode, {batch_records} records per training step (no GradCache)")
    matmul = {purpose: measure(shapes, purpose, rounds=PEAK_ROUNDS) for purpose in ("encode", "train")}
    util: dict[str, dict[str, float]] = {"encode": {}, "train": {}}
    for name in bench.utilisation_dtypes:
        for purpose in ("encode", "train"):
            r.emit(f"{purpose}_matmul_gflops_{name}", matmul[purpose][name])
        # through build_embedder, as every figure: its prefix cache is off, so every repeat computes every layer
        model = build_embedder(b, 1, max_length=s.encode_max_length, attn=b.encode_attn, dtype=name, lora=False)
        texts = encode_texts(count, model.tokenizer, max_length=s.encode_max_length)
        tokens = sum(len(t.ids) for t in model.text_tokenizer.tokenize(texts))
        log(f"cpu_utilisation: encode {len(texts)} texts in {name}")
        times = alternate({"encode": lambda m=model: m.encode(texts, batch_size=s.encode_batch, show_progress=False)},
                          warmup=s.warmup, repeats=s.repeats, device=bench.device)
        rate = tokens / median(times["encode"])
        util["encode"][name] = forward_flops * rate / (matmul["encode"][name] * 1e9)
        r.emit(f"encode_tokens_per_s_{name}", rate)
        r.emit(f"encode_cpu_utilisation_{name}", util["encode"][name])
        del model

        model = build_embedder(b, 1, max_length=s.train_max_length, attn=b.train_attn, dtype=name).train()
        records = fit_records(sample_records(batch_records), model.tokenizer, max_length=s.train_max_length,
                              template=model.config.instruction_template)
        batch = TripletCollator(model.text_tokenizer)(records)
        tokens = sum(len(t.ids) for t in [*batch["queries"], *batch["positives"], *batch["negatives"]])
        step = poolattn_step(model, chunk=s.train_chunk, grad_cache=False, scale=s.scale)
        optimizer = adamw(model.parameters(), s.lr)

        def train_step(model=model, step=step, optimizer=optimizer, batch=batch, name=name) -> None:
            # as `poolattn train` runs each dtype: bfloat16 weights under bfloat16 autocast, float32 without
            with torch.autocast(bench.device.type, dtype=torch.bfloat16, enabled=name == "bfloat16"):
                step(model, batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        log(f"cpu_utilisation: train {len(records)} records in {name}")
        times = alternate({"train": train_step}, warmup=s.warmup, repeats=s.repeats, device=bench.device)
        rate = tokens / median(times["train"])
        util["train"][name] = 2 * forward_flops * rate / (matmul["train"][name] * 1e9)
        r.emit(f"train_tokens_per_s_{name}", rate)
        r.emit(f"train_cpu_utilisation_{name}", util["train"][name])
        del model, optimizer
    for purpose in ("encode", "train"):
        chosen = choose_cpu_dtype(shapes, purpose).dtype
        if chosen not in util[purpose]:  # --dtype asked for the other one
            r.note(f"{purpose}_dtype", f"{chosen} is what dtype: auto picks here; not measured (--dtype)")
            continue
        r.note(f"{purpose}_dtype", f"{chosen} (what dtype: auto picks here)")
        r.emit(f"{purpose}_cpu_utilisation", util[purpose][chosen])
