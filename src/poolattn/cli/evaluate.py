"""`poolattn evaluate`: score a model on the offline suite (or MTEB tasks) and write results.json.

    poolattn evaluate --model runs/design5 --tasks suite --output runs/design5/eval
    poolattn evaluate --model 1 --tasks retrieval,sts --output /tmp/eval   # untrained design 1
    poolattn evaluate --model minilm --output runs/minilm                  # all-MiniLM-L6-v2 baseline
    poolattn evaluate --list-tasks [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from poolattn.cli.common import add_loading_arguments
from poolattn.config import comma_list
from poolattn.errors import InputError
from poolattn.evaluation.baselines import BASELINES, load_baseline

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH|DESIGN",
        help="saved model folder, a design (1-5 or a name such as mean-bidirectional) to use untrained, "
        "or a baseline: minilm (all-MiniLM-L6-v2), random (negative control)",
    )
    parser.add_argument(
        "--tasks",
        default="suite",
        metavar="NAMES",
        help="comma-separated: 'suite' (all offline tasks, the default), a category (retrieval, reranking, sts, "
        "classification, clustering, pair_classification), offline task names, or MTEB task names",
    )
    parser.add_argument("--output", type=Path, metavar="PATH",
                        help="folder for results.json and mteb's per-task files (inside a model folder, the "
                        "results join its model card)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="texts per forward pass (default: 32)")
    add_loading_arguments(parser)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default=None,
                        help="weights dtype for poolattn models (default: auto, float32 or bfloat16, whichever "
                        "this machine encodes faster, measured once and cached)")
    parser.add_argument("--max_length", "--max-length", type=int, default=None, metavar="N",
                        help="tokens per text for poolattn models, EOS included (default: the length the model was "
                        "trained with; at most the backbone's context)")
    parser.add_argument("--suite-dir", type=Path, default=None, metavar="PATH",
                        help="another offline suite folder (with manifest.json; default: the shipped suite)")
    parser.add_argument("--list-tasks", action="store_true", help="list the offline suite's tasks and exit")
    parser.add_argument("--json", action="store_true", help="with --list-tasks: print JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _print_task_list(suite_dir: Path | None, as_json: bool) -> None:
    # lazy: mteb (~6 s to import), see the cli package docstring
    from poolattn.evaluation.tasks import list_offline_tasks

    tasks = list_offline_tasks(suite_dir)
    if as_json:
        print(json.dumps([{"name": t["name"], "category": t["category"]} for t in tasks], indent=2))
        return
    rows = [("name", "category", "main score", "size")]
    for t in tasks:
        size = ", ".join(f"{k} {v}" for k, v in t["counts"].items())
        rows.append((t["name"], t["category"], t["main_score"], size))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    print(f"\n{len(tasks)} offline tasks; pass names, categories or 'suite' to --tasks")


def _load_encoder(args: argparse.Namespace) -> tuple[Any, str]:
    """The encoder for --model and the name its results are filed under."""
    spec = str(args.model)
    if spec.strip().lower() in BASELINES and not Path(spec).is_dir():
        if args.backbone or args.dtype or args.max_length:
            logger.warning("--backbone, --dtype and --max_length do not apply to the %s baseline; ignored", spec)
        encoder = load_baseline(spec)
        return encoder, encoder.name
    # lazy: torch (~3 s to import), see the cli package docstring
    from poolattn.model import resolve_model

    encoder = resolve_model(spec, backbone=args.backbone, dtype=args.dtype, max_length=args.max_length,
                            trust_remote_code=args.trust_remote_code)
    if Path(spec).is_dir():
        return encoder, Path(spec).resolve().name
    return encoder, f"{args.backbone or 'smollm2-135m'}-design-{spec}-untrained"


def _print_results(results: dict[str, dict[str, Any]], output: Path) -> None:
    rows = [("task", "category", "main score", "seconds")]
    by_category: dict[str, list[float]] = defaultdict(list)
    for name, result in results.items():
        rows.append((name, result["category"], f"{result['main_score']:.4f}", f"{result['evaluation_seconds']:.1f}"))
        by_category[result["category"]].append(result["main_score"])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    means = ", ".join(f"{cat} {sum(v) / len(v):.4f}" for cat, v in sorted(by_category.items()))
    print(f"\nmean by category: {means}")
    print(f"results: {output / 'results.json'}")


def run(args: argparse.Namespace) -> int:
    if args.list_tasks:
        _print_task_list(args.suite_dir, args.json)
        return 0
    missing = [flag for flag, value in (("--model", args.model), ("--output", args.output)) if not value]
    if missing:
        raise InputError(f"evaluate needs {' and '.join(missing)} (or --list-tasks to see the offline suite)")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be positive, got {args.batch_size}")

    # lazy: mteb and torch (~11 s to import), see the cli package docstring
    from poolattn.evaluation.run import evaluate
    from poolattn.evaluation.tasks import get_tasks

    names = comma_list(args.tasks)
    if not names:
        raise InputError("--tasks is empty; name tasks or use 'suite' for the offline suite")
    tasks = get_tasks(names, suite_dir=args.suite_dir)  # unknown names fail here, before the model loads
    encoder, model_name = _load_encoder(args)
    results = evaluate(
        encoder,
        tasks,
        args.output,
        batch_size=args.batch_size,
        show_progress=not args.no_progress,
        model_name=model_name,
        suite_dir=args.suite_dir,
    )
    _print_results(results, args.output)
    _refresh_model_card(Path(str(args.model)), args.output)
    return 0


def _refresh_model_card(model_dir: Path, output: Path) -> None:
    """Results written inside a saved model's folder join its model card."""
    if not (model_dir / "poolattn.json").is_file():
        return
    if output.resolve().is_relative_to(model_dir.resolve()):
        from poolattn.model.card import write_model_card

        write_model_card(model_dir)
