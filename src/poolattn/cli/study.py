"""`poolattn study`: the paper's experiment as one command: train the designs, evaluate, compare, report."""

from __future__ import annotations

import argparse

from poolattn.cli.train import add_config_arguments, config_from_args
from poolattn.errors import InputError, InputNotFoundError
from poolattn.config import comma_list, merge
from poolattn.study.plan import describe, make_plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--designs", default=None, help="comma-separated designs to run, e.g. 1,5 (default: config)")
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds, each design trained once per "
                        "seed, e.g. 42,43,44 (default: study.seeds in the config, else train.seed alone)")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks, 'suite' or categories (default: config)")
    parser.add_argument("--study-dir", default=None, help="where the runs and the report go (default: config)")
    parser.add_argument("--force", action="store_true", help="redo runs that are already trained and evaluated")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and estimated_minutes=N (from a "
                        "short calibration on this machine) and exit")
    parser.add_argument("--no-estimate", action="store_true", help="no calibration: --dry-run prints the plan "
                        "only (loads no model), the progress bar estimates from finished runs only")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _rerun_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.config:
        out += ["--config", args.config]
    if args.designs:
        out += ["--designs", args.designs]
    if args.seeds:
        out += ["--seeds", args.seeds]
    if args.study_dir:
        out += ["--study-dir", args.study_dir]
    return out


def _seeds(text: str) -> list[int]:
    parts = comma_list(text)
    bad = [p for p in parts if not p.lstrip("-").isdigit()]
    if bad or not parts:
        raise InputError(f"--seeds {text!r}: give comma-separated integers, e.g. --seeds 42,43,44")
    return [int(p) for p in parts]


def run(args: argparse.Namespace) -> int:
    if args.design is not None:
        raise InputError("a study runs several designs: use --designs 1,5 (or study.designs in the config)")
    config = config_from_args(args)
    overrides: dict = {}
    if args.designs:
        overrides.setdefault("study", {})["designs"] = comma_list(args.designs)
    if args.seeds:
        overrides.setdefault("study", {})["seeds"] = _seeds(args.seeds)
    if args.study_dir:
        overrides.setdefault("study", {})["output_dir"] = args.study_dir
    if args.tasks:
        overrides.setdefault("eval", {})["tasks"] = comma_list(args.tasks)
    if args.no_progress:
        overrides["train"] = {"disable_tqdm": True}
    if overrides:
        config = merge(config, overrides)
    plan = make_plan(config)
    print(describe(plan))
    if args.dry_run:
        if not args.no_estimate:
            # lazy: the calibration imports what a study run does (~12 s), see the cli package docstring
            from poolattn.study.eta import calibrate, describe_calibration, describe_estimate, estimate

            try:
                calibration = calibrate(plan)
                print("\n".join(describe_estimate(estimate(plan, calibration)) + describe_calibration(calibration)))
            except InputNotFoundError as exc:  # the plan stands without the backbone; only the estimate needs it
                print(f"estimated_minutes=unknown\nno estimate is possible: the backbone is needed to time a step "
                      f"and it cannot be read here ({exc})")
        return 0
    # lazy: transformers' Trainer, mteb and torch (~12 s to import), see the cli package docstring
    from poolattn.study.run import launched_processes, run_study, train_designs

    if launched_processes() > 1:
        train_designs(plan, force=args.force)
        print(f"\ntrained {sum(r.trained for r in plan.runs)} designs on {launched_processes()} processes. Evaluate "
              f"and report in one process: poolattn study {' '.join(_rerun_args(args))}")
        return 0
    results = run_study(plan, force=args.force, progress=not args.no_progress,
                        calibrate=not (args.no_progress or args.no_estimate), child_processes=True)
    print(f"\nresults: {results}\nreport:  {results.parent / 'report.md'} and {results.parent / 'report.html'}")
    return 0
