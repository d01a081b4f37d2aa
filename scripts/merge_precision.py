"""How much does folding LoRA into low-precision weights move the evaluation scores?

Usage: python scripts/merge_precision.py MODEL_DIR OUT_DIR [TASK ...]   (default: the whole offline suite)

Evaluates one trained model three ways, with bfloat16 weight values:
  (a) merged in bfloat16: load the backbone in bfloat16, fold LoRA in (peft's merge; poolattn's path before it
      kept low-precision models unmerged);
  (b) merged in float32 from the float32 backbone, cast once to bfloat16;
  (c) unmerged: bfloat16 backbone with the LoRA side path (the model as trained; poolattn's path now).
With --compute float32 (the default) the bfloat16 weights are upcast to float32 for the forward pass, so the
figures isolate what the weights lose, and the run is affordable on a CPU without fast bfloat16 matrix products;
--compute bfloat16 runs the forward in bfloat16 as evaluation on a GPU would. Prints one line per task and the
largest differences; writes OUT_DIR/merge_precision.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from poolattn.evaluation import evaluate
from poolattn.model import Embedder
from poolattn.study.plan import expand_tasks


def _path(model_dir: Path, which: str, compute: torch.dtype) -> Embedder:
    if which == "a":
        model = Embedder.load(model_dir, device="cpu", dtype="bfloat16", merge_lora=True)
    elif which == "b":
        model = Embedder.load(model_dir, device="cpu", dtype="float32", merge_lora=True)
        model.backbone.to(torch.bfloat16)
    else:
        model = Embedder.load(model_dir, device="cpu", dtype="bfloat16", merge_lora=False)
    base = model.backbone.get_base_model() if hasattr(model.backbone, "get_base_model") else model.backbone
    base.to(compute)  # LoRA weights stay float32 (peft keeps adapters in float32)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("tasks", nargs="*", default=["suite"])
    parser.add_argument("--compute", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    compute = getattr(torch, args.compute)
    tasks = expand_tasks(args.tasks)
    scores: dict[str, dict[str, float]] = {}
    for which in ("a", "b", "c"):
        start = time.perf_counter()
        model = _path(args.model_dir, which, compute)
        results = evaluate(model, tasks, args.out_dir / which, batch_size=32, show_progress=False,
                           model_name=f"merge-{which}")
        scores[which] = {t: r["main_score"] for t, r in results.items()}
        print(f"path ({which}): {time.perf_counter() - start:.0f} s", flush=True)
    largest = {}
    for x, y in (("a", "c"), ("b", "c"), ("a", "b")):
        largest[f"{x}-{y}"] = max(abs(scores[x][t] - scores[y][t]) for t in tasks)
    for t in tasks:
        print(f"{t}: a={scores['a'][t]:.6f} b={scores['b'][t]:.6f} c={scores['c'][t]:.6f}")
    print(json.dumps(largest))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    (args.out_dir / "merge_precision.json").write_text(json.dumps(
        {"tasks": tasks, "scores": scores, "largest_difference": largest, "compute": args.compute, "cpu": cpu,
         "torch": torch.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main()
