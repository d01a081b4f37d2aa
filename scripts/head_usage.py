"""How much does a trained pooling head add to the fixed pooling it started from?

Usage: python scripts/head_usage.py RUN_OR_STUDY_DIR [...] [--out FILE.json] [--dtype auto|float32|bfloat16]
       [--backbone PATH]

A head trained with `pooling.init: residual` outputs `base + W r`: `base` is its parameter-free counterpart (masked
mean of the last layer for `latent`, the last selected layer's summary for `multilayer`: EOS pooling under causal
attention) and `W r` the learned correction. On the run's own held-out records (the `data.holdout` records its
training never saw, split as training split them), this prints per run:

- `corr/base`: the correction's norm over the base's, averaged over texts;
- `shared`: the share of the correction's energy in its mean over texts, a vector added to every text alike (it
  moves every embedding the same way and so changes little of what cosine similarity ranks);
- `cos(out,base)`: the mean cosine between the head's output and its base;
- recall@1 / MRR of each held-out query against the 200 positives, with the head as trained and with the
  correction taken out (W = 0: the fixed pooling with the same trained LoRA). The difference is what the trained
  head contributes to held-out retrieval.

A study folder (one with `runs/`) stands for every trained run in it (`runs/<key>/model/`); runs without a residual-start head (design 1, the
untrained baseline, `pooling.init: paper`) are listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from poolattn.config import load_config
from poolattn.model import Embedder
from poolattn.training.callbacks import holdout_metrics
from poolattn.training.run import training_split


def _run_dirs(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if (path / "runs").is_dir():  # a study: runs/<key>/model/ is each trained run's model folder
            found += sorted(p / "model" for p in (path / "runs").iterdir() if (p / "model" / "poolattn.json").is_file())
        elif (path / "poolattn.json").is_file():
            found.append(path)
        else:
            raise SystemExit(f"{path}: neither a trained model folder (poolattn.json) nor a study folder (runs/)")
    return found


def _name(run: Path) -> str:
    return run.parent.name if run.name == "model" else run.name


def _held_out(run: Path) -> list:
    config_file = run / "run_config.yaml"
    if not config_file.is_file():
        raise SystemExit(f"{run}: no run_config.yaml, so its held-out records are unknown; pass a folder that "
                         "`poolattn train` or `poolattn study` wrote")
    config = load_config(config_file)
    if not config.data.holdout:
        raise SystemExit(f"{run}: data.holdout is 0 in its run_config.yaml: it held no records out")
    _, held = training_split(config)
    return held


def measure(run: Path, dtype: str = "auto", backbone: str | None = None) -> dict:
    model = Embedder.load(run, dtype=dtype, backbone=backbone)
    start = getattr(model.pooler, "start", None)
    if start is None or not start.residual:
        return {"run": _name(run), "skipped": "no residual-start trainable head (design 1, untrained, or init: paper)"}
    held = _held_out(run)
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = start.register_forward_hook(lambda module, args, out: captured.append((args[0].detach(), out.detach())))
    try:
        with_head = holdout_metrics(model, held)  # the training's own held-out check, with the head as trained
    finally:
        hook.remove()
    base = torch.cat([b for b, _ in captured]).double()
    out = torch.cat([o for _, o in captured]).double()
    correction = out - base
    energy = (correction.norm(dim=1) ** 2).mean()
    weight = start.delta.weight.data.clone()
    start.delta.weight.data.zero_()
    try:
        without = holdout_metrics(model, held)  # the same check with the correction taken out
    finally:
        start.delta.weight.data.copy_(weight)
    return {
        "run": _name(run),
        "texts": int(base.shape[0]),
        "correction_over_base": float((correction.norm(dim=1) / base.norm(dim=1)).mean()),
        "shared_fraction": float(correction.mean(dim=0).norm() ** 2 / energy) if energy > 0 else 0.0,
        "cos_out_base": float(torch.nn.functional.cosine_similarity(out, base).mean()),
        "recall@1": with_head["recall@1"], "recall@1_without_correction": without["recall@1"],
        "mrr": with_head["mrr"], "mrr_without_correction": without["mrr"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="trained model folders or study folders")
    parser.add_argument("--out", type=Path, help="write every run's figures here as JSON")
    parser.add_argument("--dtype", default="auto", help="backbone dtype for encoding (default: auto, as the study)")
    parser.add_argument("--backbone", help="load the backbone from here (a run trained on a local folder needs it)")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'run':28} {'corr/base':>9} {'shared':>6} {'cos(out,base)':>13} {'R@1':>6} {'R@1 W=0':>7} "
          f"{'MRR':>6} {'MRR W=0':>7}")
    for run in _run_dirs(args.paths):
        row = measure(run, args.dtype, args.backbone)
        rows.append(row)
        if "skipped" in row:
            print(f"{_name(run):28} skipped: {row['skipped']}")
            continue
        print(f"{_name(run):28} {row['correction_over_base']:9.3f} {row['shared_fraction']:6.2f} "
              f"{row['cos_out_base']:13.4f} {row['recall@1']:6.3f} {row['recall@1_without_correction']:7.3f} "
              f"{row['mrr']:6.3f} {row['mrr_without_correction']:7.3f}")
    measured = [r for r in rows if "skipped" not in r]
    if measured:
        gain = np.array([r["recall@1"] - r["recall@1_without_correction"] for r in measured])
        print(f"held-out recall@1 with the head minus without its correction: mean {gain.mean():+.3f}, "
              f"range {gain.min():+.3f} to {gain.max():+.3f} over {len(measured)} runs")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
