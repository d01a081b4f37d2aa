"""The study's arithmetic floor on this machine: its matmul FLOPs over this CPU's own measured matmul rate.

    python benchmarks/study_floor.py                                   # configs/demo.yaml
    python benchmarks/study_floor.py --results docs/study/results.json # and the study's measured times beside it

Counts the real tokens (no padding) a study processes, with the code that runs it:
- training: each trained run's first `max_steps` batches from its own sampler (same data, held-out split and seed
  as `poolattn train`), tokenised by the training collator (queries with their instruction, positives,
  negatives); plus the held-out check's encodes (queries and positives, before and after training and every
  eval_steps);
- evaluation: every text mteb asks one evaluation of the plan's tasks to encode (recorded with a random encoder,
  as the ETA's calibration does), with its instruction, once per run.
FLOPs per token are the decoder layers' seven projections, counted as benchmarks/utilisation.py counts them: the
forward over every layer, and for a training token also the input gradient of the layers from the lowest LoRA
layer up (backpropagation stops there). With the frozen-prefix cache on (`model.prefix_cache: auto` and LoRA on
the upper layers only), the layers below the lowest LoRA layer run once per text and attention mode: for the
training batches and the held-out check once per (attention mode, seed), since the designs of one mode and seed
see the same batches and a training run reads only its own seed's entries (`PrefixCache.scope`); for the
evaluation once per attention mode. The floor counts only that; the floor
without the cache is printed beside it. Each is timed at the rate this CPU's matmuls reach at the backbone's layer
shapes in the dtype `dtype: auto` picks (`poolattn.backbone.dtype.measure`): forwards at the encode measurement's
rate, input gradients at what the training measurement (a forward and an input gradient) takes beyond its
forward. The sum is the time the study's matrix products need at this CPU's best: attention scores, norms, the
pooling heads, padding, the optimizer and mteb's own work all come on top, so no implementation of the same
study runs faster on this CPU. stdout: `name=value` lines; stderr: progress.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/study_floor.py` from the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.common import log  # noqa: E402
from benchmarks.utilisation import PEAK_ROUNDS  # noqa: E402


def _lora_depth(run_config, layers: int) -> int:
    """How many decoder layers, counted from the top, backpropagation runs through (all without a layer list): the
    layers LoRA adapts under the run's attention mode (`lora.bidirectional_layers` for designs 4-5)."""
    from poolattn.backbone.load import lora_layer_indices

    indices = lora_layer_indices(run_config.model.lora_layers, layers)
    return layers - indices[0] if indices else layers


def _tokens(texts) -> int:
    return sum(len(t.ids) for t in texts)


def training_tokens(run_config, tokenizer, steps: int) -> dict[str, int]:
    """Real tokens of the first `steps` training batches and of the held-out check's encodes, for one run."""
    from poolattn.study.eta import _holdout_encodes
    from poolattn.training.recipe import batch_tokens
    from poolattn.training.run import training_split

    dataset, held = training_split(run_config)
    trained = sum(batch_tokens(run_config, dataset, tokenizer, steps))
    holdout = checks = 0
    if held:
        checks = _holdout_encodes(run_config, steps) // (2 * len(held))
        one = _tokens(tokenizer.tokenize([r.query for r in held], [r.instruction for r in held]))
        holdout = checks * (one + _tokens(tokenizer.tokenize([r.positive for r in held])))
    return {"train": trained, "holdout": holdout, "holdout_checks": checks}


def cached_layers(run_config, layers: int) -> int:
    """Decoder layers the frozen-prefix cache runs once per text for this run (0 where its config turns it off)."""
    from poolattn.study.plan import prefix_cache_off

    if prefix_cache_off(run_config) is not None:
        return 0
    return layers - _lora_depth(run_config, layers) if run_config.model.lora.enabled else layers


def floor(config_path: str) -> dict[str, Any]:
    from poolattn.backbone.dtype import LayerShapes, choose_cpu_dtype, measure
    from poolattn.config import load_config, merge
    from poolattn.model import Embedder
    from poolattn.study.eta import _planned_steps, evaluation_texts
    from poolattn.study.plan import make_plan

    plan = make_plan(load_config(config_path))
    first = plan.runs[0].config
    model = Embedder.from_config(merge(first, {"model": {"dtype": "float32"}}).model)
    tokenizer = model.text_tokenizer
    hf_config = model.backbone.config
    shapes, layers = LayerShapes.from_config(hf_config), hf_config.num_hidden_layers
    forward = layers * shapes.flops_per_token

    log("recording the texts one evaluation encodes (mteb with a random encoder)")
    texts, mteb_seconds = evaluation_texts(plan, model.embedding_dim)
    eval_tokens = _tokens(tokenizer.tokenize([t for t, _ in texts], [i for _, i in texts]))
    runs = {}
    memo: dict[tuple, dict[str, int]] = {}
    for run in plan.runs:
        if not run.trained:
            runs[run.key] = {"train_tokens": 0, "holdout_tokens": 0, "holdout_checks": 0, "backward_layers": 0}
            continue
        steps = _planned_steps(run.config)
        key = (run.config.train.seed, steps)  # every design sees the same data in the same order for one seed
        if key not in memo:
            log(f"tokenising {steps} training batches (seed {run.config.train.seed})")
            memo[key] = training_tokens(run.config, tokenizer, steps)
        runs[run.key] = {"train_tokens": memo[key]["train"], "holdout_tokens": memo[key]["holdout"],
                         "holdout_checks": memo[key]["holdout_checks"],
                         "backward_layers": _lora_depth(run.config, layers)}
    # the cache: which runs meet a text first (they run the cached layers), per attention mode and seed
    first_seen: set[tuple] = set()
    for run in plan.runs:
        mode, seed = run.config.model.attention, run.config.train.seed
        cut = cached_layers(run.config, layers)
        entry = runs[run.key]
        entry["cached_layers"] = cut
        entry["first_train"] = run.trained and ("train", mode, seed) not in first_seen
        entry["first_holdout"] = run.trained and ("holdout", mode, seed) not in first_seen
        entry["first_eval"] = ("eval", mode) not in first_seen
        if run.trained:
            first_seen |= {("train", mode, seed), ("holdout", mode, seed)}
        first_seen.add(("eval", mode))

    log("measuring matmul GFLOP/s at the backbone's layer shapes")
    rates = {purpose: measure(shapes, purpose, rounds=PEAK_ROUNDS) for purpose in ("encode", "train")}
    chosen = {purpose: choose_cpu_dtype(shapes, purpose).dtype for purpose in ("encode", "train")}
    encode_rate = rates["encode"][chosen["encode"]] * 1e9
    # the train measurement times a forward and an input gradient together (2 x flops_per_token per row): take
    # the forward's share at the encode rate, and the rest is the input gradient's time
    train_rate = rates["train"][chosen["train"]] * 1e9
    gradient_s = max(2 * shapes.flops_per_token / train_rate - shapes.flops_per_token / encode_rate, 0.0)
    train_flops = eval_flops = 0.0
    layer = shapes.flops_per_token  # one decoder layer's forward, per token
    for run in runs.values():
        backward = run["backward_layers"] * layer
        backward_s = run["backward_layers"] * gradient_s
        # without the cache every token runs every layer
        run["train_floor_s_no_cache"] = (run["train_tokens"] * (forward / encode_rate + backward_s)
                                         + run["holdout_tokens"] * forward / encode_rate)
        run["eval_floor_s_no_cache"] = eval_tokens * forward / encode_rate
        # with it, the cached layers run only where the run meets its texts first; a held-out check's texts are the
        # same at every check, so even the first run of a mode runs them once (1 / checks of its held-out tokens)
        cut, live = run["cached_layers"], forward - run["cached_layers"] * layer
        checks = run["holdout_checks"]
        train_forward = run["train_tokens"] * (live + (cut * layer if run["first_train"] else 0))
        holdout_forward = run["holdout_tokens"] * live + (
            run["holdout_tokens"] // checks * cut * layer if run["first_holdout"] and checks else 0)
        eval_forward = eval_tokens * (live + (cut * layer if run["first_eval"] else 0))
        run["train_floor_s"] = (train_forward + holdout_forward) / encode_rate + run["train_tokens"] * backward_s
        run["eval_floor_s"] = eval_forward / encode_rate
        train_flops += train_forward + holdout_forward + run["train_tokens"] * backward
        eval_flops += eval_forward
    return {
        "config": config_path, "backbone": first.model.backbone, "layers": layers,
        "forward_flops_per_token": forward, "eval_texts": len(texts), "eval_tokens_per_run": eval_tokens,
        "mteb_seconds_per_run": mteb_seconds, "dtype": chosen, "gflops": rates, "runs": runs,
        "train_flops": train_flops, "eval_flops": eval_flops,
        **{f"{part}_floor_s{suffix}": sum(r[f"{part}_floor_s{suffix}"] for r in runs.values())
           for part in ("train", "eval") for suffix in ("", "_no_cache")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--results", help="a finished study's results.json: its measured times beside the floor")
    parser.add_argument("--json", help="also write every count and figure to this JSON file")
    args = parser.parse_args(argv)
    for flag, path in (("--config", args.config), ("--results", args.results)):
        if path and not Path(path).is_file():
            parser.error(f"{flag} {path}: no such file")
    if args.results:
        try:
            done = json.loads(Path(args.results).read_text(encoding="utf-8"))["runs"]
        except (ValueError, KeyError, TypeError) as error:
            parser.error(f"--results {args.results}: not a study's results.json ({error!r}); "
                         "give the results.json a finished `poolattn study` wrote")
    from poolattn.errors import UsageError

    try:
        result = floor(args.config)
    except UsageError as error:  # a config that does not validate, data that is missing: say which, no traceback
        parser.error(f"--config {args.config}: {error}")
    lines = {
        "eval_texts_per_run": result["eval_texts"], "eval_tokens_per_run": result["eval_tokens_per_run"],
        "train_tokens_per_run": max(r["train_tokens"] for r in result["runs"].values()),
        "encode_dtype": result["dtype"]["encode"], "train_dtype": result["dtype"]["train"],
        "encode_matmul_gflops": f"{result['gflops']['encode'][result['dtype']['encode']]:.1f}",
        "train_matmul_gflops": f"{result['gflops']['train'][result['dtype']['train']]:.1f}",
        "train_floor_minutes": f"{result['train_floor_s'] / 60:.1f}",
        "eval_floor_minutes": f"{result['eval_floor_s'] / 60:.1f}",
        "study_floor_minutes": f"{(result['train_floor_s'] + result['eval_floor_s']) / 60:.1f}",
        "train_floor_minutes_no_cache": f"{result['train_floor_s_no_cache'] / 60:.1f}",
        "eval_floor_minutes_no_cache": f"{result['eval_floor_s_no_cache'] / 60:.1f}",
        "study_floor_minutes_no_cache": f"{(result['train_floor_s_no_cache'] + result['eval_floor_s_no_cache']) / 60:.1f}",
    }
    if args.results:
        train_s = sum((r.get("train") or {}).get("seconds", 0.0) for r in done.values())
        eval_s = sum(r.get("eval_seconds") or 0.0 for r in done.values())
        # the floor of the study as it ran: a study from before the cache records no model.prefix_cache
        cached = any(((r.get("identity") or {}).get("config") or {}).get("model", {}).get("prefix_cache") == "auto"
                     for r in done.values())
        suffix = "" if cached else "_no_cache"
        lines |= {"measured_train_minutes": f"{train_s / 60:.1f}", "measured_eval_minutes": f"{eval_s / 60:.1f}",
                  "measured_with_prefix_cache": str(cached).lower(),
                  # floor / measured: the fraction of the time the study spent in its necessary matmuls
                  "train_floor_fraction": f"{result['train_floor_s' + suffix] / train_s:.3f}" if train_s else "n/a",
                  "eval_floor_fraction": f"{result['eval_floor_s' + suffix] / eval_s:.3f}" if eval_s else "n/a"}
        result["measured"] = {"train_seconds": train_s, "eval_seconds": eval_s}
    for name, value in lines.items():
        print(f"{name}={value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
