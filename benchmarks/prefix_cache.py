"""The frozen-prefix cache on the real backbone: time with and without it, and what the embedded study would store.

    PYTHONPATH=src python benchmarks/prefix_cache.py [--steps 3] [--texts 200] [--design 3]

Prints `name=value` lines: seconds per training step (cache off; on and cold, the first design to see a batch;
on and warm, every later design or seed of the same attention mode that sees it), seconds to encode `--texts`
suite texts (off, cold, warm), the measured entry sizes, and the bytes the embedded study's texts would take
(training: the batches of `train.max_steps` steps; evaluation: every suite text), from the real token counts.
No timing is asserted: the machine and its load decide; report them with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import torch

from poolattn.backbone.prefix_store import shared_store
from poolattn.config import Config, load_yaml, merge
from poolattn.designs import get_design

ROOT = Path(__file__).resolve().parents[1]


def _config(design: int, cache: str) -> Config:
    config = merge(Config.from_dict(load_yaml(ROOT / "configs" / "demo.yaml")), get_design(design).overrides())
    return merge(config, {"model": {"dtype": "float32", "prefix_cache": cache},
                          "train": {"disable_tqdm": True}})


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--design", type=int, default=3)
    args = parser.parse_args()
    from poolattn.data.collator import TripletCollator
    from poolattn.data.sampler import SourceBatchSampler
    from poolattn.model import Embedder
    from poolattn.speed import time_train_steps
    from poolattn.study.eta import evaluation_texts
    from poolattn.study.plan import make_plan
    from poolattn.training.run import load_training_data

    print(f"# cpu: {_cpu()}; torch threads: {torch.get_num_threads()}; load average: {os.getloadavg()}")
    print(f"# design {args.design}, float32, configs/demo.yaml (LoRA on the upper 12 of 30 layers, dropout 0)")
    store = shared_store()
    steps = {}
    for label, cache in (("off", "off"), ("cold", "auto"), ("warm", "auto")):
        if label == "cold":
            store.clear()
        rate = time_train_steps(_config(args.design, cache), args.steps, warmup=1)
        steps[label] = rate.seconds_per_item
        print(f"train_seconds_per_step_{label}={rate.seconds_per_item:.3f}")
    print(f"train_speedup_warm={steps['off'] / steps['warm']:.2f}")

    config = _config(args.design, "auto")
    model = Embedder.from_config(config.model).merge_lora()
    texts, _ = evaluation_texts(make_plan(config), model.embedding_dim)
    sample = texts[:: max(1, len(texts) // args.texts)][: args.texts]
    store.clear()
    seconds = {}
    for label in ("off", "cold", "warm"):
        model.prefix_cache = None if label == "off" else model.prefix_cache or _fresh_cache()
        start = time.perf_counter()
        model.encode([t for t, _ in sample], instruction=[i for _, i in sample], batch_size=config.eval.batch_size,
                     show_progress=False)
        seconds[label] = time.perf_counter() - start
        print(f"encode_seconds_{len(sample)}_texts_{label}={seconds[label]:.2f}")
    print(f"encode_speedup_warm={seconds['off'] / seconds['warm']:.2f}")

    width = model.backbone.config.hidden_size
    frozen = model.prefix_cache.plan(model).first_adapted
    vector_bytes = (frozen + 1) * width * 4 if model.pooler.uses_all_layers else 0
    items = model.text_tokenizer.tokenize([t for t, _ in texts], [i for _, i in texts])
    eval_tokens = sum(len(item.ids) for item in items)
    print(f"entry_state_bytes_per_token={width * 4}")
    print(f"entry_vector_bytes_per_text={vector_bytes}")
    print(f"eval_texts={len(items)} eval_tokens={eval_tokens} "
          f"eval_bytes_per_mode={eval_tokens * width * 4 + len(items) * vector_bytes}")
    dataset = load_training_data(config)
    records = config.train.per_device_train_batch_size * config.train.gradient_accumulation_steps
    sampler = iter(SourceBatchSampler(dataset.sources if len(dataset.sources) == len(dataset) else [None] * len(dataset),
                                      records, seed=config.train.seed, same_source=config.data.same_source_batches))
    collator = TripletCollator(model.text_tokenizer)
    seen: set[tuple[int, ...]] = set()
    for _ in range(config.train.max_steps):
        batch = collator([dataset[j] for j in next(sampler)])
        seen.update(tuple(item.ids) for item in (*batch["queries"], *batch["positives"], *batch["negatives"]))
    train_tokens = sum(len(ids) for ids in seen)
    print(f"train_texts={len(seen)} train_tokens={train_tokens} "
          f"train_bytes_per_mode={train_tokens * width * 4 + len(seen) * vector_bytes}")
    print(f"store_peak_bytes={store.stats.peak_bytes}")
    # ru_maxrss is in KiB on Linux: the whole process, model and mteb data included, not only the store
    print(f"process_peak_rss_bytes={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}")


def _fresh_cache():
    from poolattn.backbone.prefix import PrefixCache

    return PrefixCache()


if __name__ == "__main__":
    main()
