"""Run a study plan: train each design, evaluate it and the untrained baseline, write results and the report.

Resumable: a run whose `run.json` exists is reused (its model and scores stay), so an interrupted study picks up
where it stopped; `force=True` redoes everything. A training run interrupted half-way resumes from its latest
checkpoint. `results.json` is rewritten after every run, so partial results are always readable.

A run is reused only when it was made by the same settings: each run records its identity (the resolved config,
a hash of the training data used, the poolattn version; `training/identity.py`). Before any work, every existing
run is compared with what this invocation would make; any difference stops the study with the differing keys
(old -> new) and the two ways out, `--force` or another `--study-dir`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from poolattn.config import merge
from poolattn.errors import InputError
from poolattn.evaluation.items import ITEMS_DIR
from poolattn.evaluation.run import evaluate
from poolattn.model import Embedder
from poolattn.model.card import write_model_card
from poolattn.study.analysis import analyse
from poolattn.study.eta import calibrate, estimate
from poolattn.study.processes import ChildProcess, SameProcess
from poolattn.study.plan import RunPlan, StudyPlan, expand_tasks
from poolattn.study.report import write_report
from poolattn.study.results import load_results
from poolattn.training.identity import identity_differences, make_identity, read_identity, records_sha256
from poolattn.training.run import SUMMARY, remove_run, train, training_split
from poolattn.version import __version__

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
RESULTS_FILE = "results.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__, "device": device,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


class _Eta:
    """Remaining time from the phases done so far: mean duration of each kind of phase x phases left; before
    a kind has finished once, the calibrated estimate of its mean (`prior`, see study/eta.py)."""

    def __init__(self, prior: dict[str, float] | None = None) -> None:
        self.done: dict[str, list[float]] = {"train": [], "eval": []}
        self.prior = prior or {}

    def add(self, kind: str, seconds: float) -> None:
        self.done[kind].append(seconds)

    def remaining(self, left: dict[str, int]) -> str:
        total = 0.0
        for kind, count in left.items():
            if count and not self.done[kind] and kind not in self.prior:
                return "estimating"
            if count:
                done = self.done[kind]
                total += count * (sum(done) / len(done) if done else self.prior[kind])
        return f"~{int(total // 60)} min left" if total >= 60 else f"~{int(total)} s left"


class StaleRunError(InputError):
    """Existing runs in the study folder were made with other settings (or data, or poolattn version)."""


def study_data_sha256(plan: StudyPlan) -> str | None:
    """Hash of the training records the trained runs use (after the held-out split and max_records)."""
    trained = [r for r in plan.runs if r.trained]
    if not trained:
        return None
    config = trained[0].config  # check_controlled: every trained run has the same data settings
    dataset, _ = training_split(config)
    return records_sha256(dataset[i] for i in range(len(dataset)))


def expected_identity(run: RunPlan, data_sha256: str | None) -> dict[str, Any]:
    """What `run` would record if made now; an untrained run depends on the model and evaluation only."""
    if run.trained:
        return make_identity(run.config, data_sha256, sections=("model", "data", "loss", "train", "eval"))
    return make_identity(run.config, None, sections=("model", "eval"))


def check_reusable(plan: StudyPlan, identities: dict[str, dict[str, Any]]) -> None:
    """Raise `StaleRunError` naming every existing run (finished, or trained and not yet evaluated) whose recorded
    identity differs from `identities[run.key]`.

    Raises:
        StaleRunError: one or more runs were made with other settings, data or poolattn version.
    """
    stale = []
    for run in plan.runs:
        run_file = run.folder / RUN_FILE
        if run_file.is_file():
            differences = identity_differences(json.loads(run_file.read_text()).get("identity"),
                                               identities[run.key], ignore=("study",))
        elif run.trained and ((run.model_dir / SUMMARY).is_file() or any(run.model_dir.glob("checkpoint-*"))):
            # trained (or half-trained) but not evaluated: how it is evaluated is still open
            differences = identity_differences(read_identity(run.model_dir), identities[run.key],
                                               ignore=("study", "eval"))
        else:
            continue
        if differences:
            stale.append(f"  {run.label} ({run.folder}):\n" + "\n".join(f"    {d}" for d in differences))
    if stale:
        raise StaleRunError(
            f"study folder {str(plan.output_dir)!r} holds runs made with other settings (old -> new):\n"
            + "\n".join(stale)
            + "\nNothing was run. Pass --force to retrain and re-evaluate them, or give another --study-dir to "
            "keep the old runs."
        )


def _train_run(run: RunPlan, force: bool) -> dict[str, Any]:
    config = run.config
    summary_file = run.model_dir / SUMMARY
    if summary_file.is_file() and not force:
        logger.info("%s: reusing the trained model in %s", run.label, run.model_dir)
    else:
        if force and run.model_dir.exists():
            remove_run(run.model_dir, flag="--force")
        if any(run.model_dir.glob("checkpoint-*")):
            config = merge(config, {"train": {"resume_from_checkpoint": "latest"}})
            logger.info("%s: resuming training from the latest checkpoint", run.label)
        train(config)
    summary = json.loads(summary_file.read_text())
    history = [[e["step"], e["loss"]] for e in summary.get("log_history", []) if "loss" in e]
    holdout = summary.get("holdout") or {}
    return {
        "steps": summary["steps"],
        "seconds": summary["seconds"],
        "loss_history": history,
        "holdout_before": holdout.get("before"),
        "holdout_after": holdout.get("after"),
        "holdout_curve": holdout.get("curve"),  # (step, recall@1, MRR) every train.eval_steps; None: older run
        "contrastive_batch": summary.get("contrastive_batch"),
        "hard_negatives": summary.get("hard_negatives"),
        "trainable_parameters": summary.get("trainable_parameters"),
        "precision": summary.get("precision"),  # what dtype: auto resolved to for training on this machine
    }


def _evaluate_run(run: RunPlan, tasks: list[str], progress: bool,
                  items_dir: Path | None = None) -> tuple[dict[str, Any], float, int | None]:
    """The run's scores by task, the seconds they took, and the padded positions an encoding pass held (None: no
    cap, as on a GPU): in bfloat16 a text's embedding depends slightly on its pass (backbone/passes.py)."""
    eval_dtype = run.config.eval.dtype
    if run.trained:
        # the backbone and trust come from this study's config (the caller), not from the folder being loaded
        model = Embedder.load(run.model_dir, dtype=eval_dtype, backbone=run.config.model.backbone,
                              trust_remote_code=run.config.model.trust_remote_code)
    else:
        model = Embedder.from_config(merge(run.config, {"model": {"dtype": eval_dtype}}).model).merge_lora()
    start = time.perf_counter()
    results = evaluate(model, tasks, run.eval_dir, batch_size=run.config.eval.batch_size, show_progress=progress,
                       model_name=f"poolattn-{run.key}", items_dir=items_dir)
    seconds = time.perf_counter() - start
    if run.trained:
        write_model_card(run.model_dir)  # the scores join the trained model's card
    return results, seconds, model.pass_tokens()


def launched_processes() -> int:
    """How many processes `accelerate launch` / `torchrun` started (1 for a plain run)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def train_designs(plan: StudyPlan, *, force: bool = False) -> None:
    """Training phase only, for multi-process launches: every rank trains, nobody evaluates."""
    if not force:
        data_sha256 = study_data_sha256(plan)
        check_reusable(plan, {run.key: expected_identity(run, data_sha256) for run in plan.runs})
    for run in plan.runs:
        if run.trained and not ((run.folder / RUN_FILE).is_file() and not force):
            _train_run(run, force)


def _calibrated_prior(plan: StudyPlan) -> dict[str, float]:
    """Mean seconds of a training and of an evaluation phase, from a short calibration (study/eta.py)."""
    guess = estimate(plan, calibrate(plan))
    logger.info("estimated study time on this machine: %d min (training %.0f min, evaluation %.0f min)",
                guess.minutes, guess.train_total / 60, guess.eval_total / 60)
    prior = {"eval": guess.eval_total / max(len(guess.eval), 1)}
    if guess.train:
        prior["train"] = guess.train_total / len(guess.train)
    return prior


def _earlier_study(path: Path) -> dict[str, Any]:
    """The "study" entry of an earlier results.json in the same folder ({} when there is none or it is unreadable)."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")).get("study")
    except (OSError, ValueError, AttributeError):
        return {}
    return earlier if isinstance(earlier, dict) else {}


def _worker(child: bool, doing: str) -> ChildProcess | SameProcess:
    return ChildProcess(doing) if child else SameProcess()


def run_study(plan: StudyPlan, *, force: bool = False, progress: bool = True, calibrate: bool = False,
              child_processes: bool = False) -> Path:
    """Train and evaluate every run of `plan`, then write results.json and the report; return results.json.

    `calibrate` times a few training steps and encode batches first, so the progress bar shows the remaining
    time from the start instead of after the first run of each kind. `child_processes` (as `poolattn study`
    runs) evaluates in one child process and trains in another, new for each attention mode: in a process that
    had trained, evaluation ran up to 1.9x slower and other designs' training 1.3x (study/processes.py).
    """
    out = plan.output_dir
    data_sha256 = study_data_sha256(plan)
    identities = {run.key: expected_identity(run, data_sha256) for run in plan.runs}
    if not force:
        check_reusable(plan, identities)  # before any work: a stale run is never silently reused
    out.mkdir(parents=True, exist_ok=True)
    tasks = expand_tasks(plan.tasks)
    (out / "study_config.yaml").write_text(plan.config.to_yaml())
    results: dict[str, Any] = {
        "study": {"name": out.name, "backbone": plan.config.model.backbone, "poolattn_version": __version__,
                  "started": _now(), "finished": None, "machine": machine(), "config": plan.config.to_dict()},
        "tasks": {},
        "runs": {},
    }
    pending = force or any(not (run.folder / RUN_FILE).is_file() for run in plan.runs)
    earlier = _earlier_study(out / RESULTS_FILE) if not force else {}
    if earlier.get("started"):  # a resumed or re-reported study began when its first run did
        results["study"]["started"] = earlier["started"]
    eta = _Eta(_calibrated_prior(plan) if calibrate and pending else None)
    left = {"train": sum(r.trained for r in plan.runs), "eval": len(plan.runs)}
    bar = tqdm(total=left["train"] + left["eval"], desc="study", unit="phase", disable=not progress, position=0)
    mode = None  # the attention mode of the runs the training child has trained
    with _worker(child_processes, "evaluating") as evaluator, _worker(child_processes, "training") as trainer:
        for run in plan.runs:
            run_file = run.folder / RUN_FILE
            if run_file.is_file() and not force:
                entry = json.loads(run_file.read_text())
                logger.info("%s: done already (%s); --force redoes it", run.label, run_file)
                left["train"] -= run.trained
                left["eval"] -= 1
                bar.update(1 + run.trained)
            else:
                entry = {"label": run.label, "design": run.design.name, "number": run.design.number,
                         "trained": run.trained, "pooling": run.design.pooling, "attention": run.design.attention,
                         "group": run.group_key, "group_label": run.design.label if run.seed is not None else run.label,
                         "seed": run.seed, "train": None, "identity": identities[run.key]}
                if run.trained:
                    bar.set_postfix_str(f"{run.label}: training ({eta.remaining(left)})")
                    if run.design.attention != mode:  # another mode shares no cache entry: a fresh heap
                        trainer.close()
                        mode = run.design.attention
                    start = time.perf_counter()
                    entry["train"] = trainer.call(_train_run, run, force, what=run.label)
                    eta.add("train", time.perf_counter() - start)
                    left["train"] -= 1
                    bar.update(1)
                bar.set_postfix_str(f"{run.label}: evaluating ({eta.remaining(left)})")
                items = out / ITEMS_DIR / run.key
                scores, seconds, pass_tokens = evaluator.call(_evaluate_run, run, tasks, progress, items,
                                                              what=run.label)
                eta.add("eval", seconds)
                left["eval"] -= 1
                bar.update(1)
                entry["scores"] = {name: r["main_score"] for name, r in scores.items()}
                entry["categories"] = {name: r["category"] for name, r in scores.items()}
                entry["metrics"] = {name: r.get("main_score_name") for name, r in scores.items()}
                entry["eval_seconds"] = seconds
                entry["encode_pass_tokens"] = pass_tokens
                _write_json(run_file, entry)
            for name, category in entry.get("categories", {}).items():
                results["tasks"].setdefault(name, {"category": category, "main_score_name": entry.get("metrics", {}).get(name)})
            results["runs"][run.key] = entry
            _write_json(out / RESULTS_FILE, results)
    bar.close()
    # nothing left to do: this invocation only re-reports, and the study finished when it last did work
    results["study"]["finished"] = _now() if pending or not earlier.get("finished") else earlier["finished"]
    loaded = load_results(results)
    analysis = analyse(loaded, out / ITEMS_DIR)  # intervals from the items files: results.json keeps them
    results.update(analysis.results_fields())
    _write_json(out / RESULTS_FILE, results)
    write_report(loaded, out, analysis=analysis)
    return out / RESULTS_FILE
