"""A study's `results.json`, loaded once into typed objects: the runs, their scores and training, the settings.

This is the only place in study/ that reads the JSON tree; everything downstream (the score tables, the analysis,
the report) takes a `StudyResults`. The settings the report prints are those the trained runs recorded (their
identities), never the command line of a later invocation, and how the trained runs differ beyond their design is
worked out here, once.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolattn.study.plan import DESIGN_KEYS
from poolattn.training.identity import identity_differences

logger = logging.getLogger(__name__)

NOT_RECORDED = "not recorded"
UNKNOWN_CATEGORY = "other"
CATEGORY_ORDER = ("retrieval", "reranking", "clustering", "pair_classification", "classification", "sts",
                  "summarization")


def _get(tree: Mapping[str, Any], dotted: str, default: object = None) -> Any:
    """`tree["a"]["b"]` for "a.b", or `default` where a level is missing: the JSON boundary's only reader."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


# ------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Lora:
    enabled: bool | None
    r: object
    alpha: object
    dropout: object
    target_modules: tuple[object, ...]
    layers: tuple[object, ...]
    # under bidirectional attention: "same" (as layers, also when not recorded), or a tuple (() = every layer)
    bidirectional_layers: object = "same"


@dataclass(frozen=True)
class Data:
    source: str
    max_records: object
    holdout: object


@dataclass(frozen=True)
class Settings:
    """The resolved config of the study as the report prints it; a value never recorded reads NOT_RECORDED."""

    backbone: object
    max_steps: object
    num_train_epochs: object
    per_device_batch: object
    accumulation: object
    learning_rate: object
    head_learning_rate: object
    """The pooling head's own peak rate; None: the head shared `learning_rate`."""
    lr_scheduler: object
    warmup_steps: object
    loss_name: object
    loss_scale: object
    contrastive_batch: object
    grad_cache_chunk_size: object
    max_length: object
    lora: Lora | None
    """None: not recorded."""
    pooling_preset: object
    pooling_sizes: tuple[tuple[str, object], ...]
    pooling_init: object
    bf16: object
    fp16: object
    model_dtype: object
    eval_dtype: object
    model_seed: object
    train_seed: object
    data: Data | None
    """None: not recorded."""
    eval_tasks: object

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        def get(dotted: str, default: object = NOT_RECORDED) -> Any:
            return _get(config, dotted, default)

        lora = _get(config, "model.lora") or {}
        pooling = _get(config, "model.pooling") or {}
        data = None
        if "data" in config:
            raw = config["data"] or {}
            data = Data(raw.get("dataset_name") or raw.get("dataset_file_path") or "the bundled training set",
                        raw.get("max_records"), raw.get("holdout"))
        return cls(
            backbone=get("model.backbone", None), max_steps=get("train.max_steps", None),
            num_train_epochs=get("train.num_train_epochs", None),
            per_device_batch=get("train.per_device_train_batch_size"),
            accumulation=get("train.gradient_accumulation_steps"), learning_rate=get("train.learning_rate"),
            head_learning_rate=get("train.head_learning_rate"),
            lr_scheduler=get("train.lr_scheduler_type"), warmup_steps=get("train.warmup_steps"),
            loss_name=get("loss.name"), loss_scale=get("loss.scale"), contrastive_batch=get("loss.contrastive_batch"),
            grad_cache_chunk_size=get("loss.grad_cache_chunk_size"), max_length=get("model.max_length"),
            lora=Lora(lora.get("enabled"), lora.get("r"), lora.get("alpha"), lora.get("dropout"),
                      tuple(lora.get("target_modules", [])), tuple(lora.get("layers") or ()),
                      _bidirectional_layers(lora.get("bidirectional_layers", "same"))) if lora else None,
            pooling_preset=pooling.get("preset", NOT_RECORDED),
            pooling_sizes=tuple((k, pooling[k]) for k in ("num_latents", "num_heads", "head_dim", "ff_mult", "layers")
                                if pooling.get(k) is not None),
            pooling_init=pooling.get("init", NOT_RECORDED),
            bf16=get("train.bf16"), fp16=get("train.fp16"), model_dtype=get("model.dtype"),
            eval_dtype=get("eval.dtype"), model_seed=get("model.seed"), train_seed=get("train.seed"),
            data=data, eval_tasks=get("eval.tasks"))


@dataclass(frozen=True)
class Machine:
    cpu: str | None
    threads: int | None
    cpu_capability: str | None
    torch: str | None
    device: str | None


# ---------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Training:
    """What a trained run recorded about its training."""

    steps: int | None
    seconds: float | None
    loss_history: tuple[tuple[float, float | None], ...]
    """(step, loss) as logged; a loss may be None."""
    recall_before: float | None
    recall_after: float | None
    lora_parameters: int | None
    head_parameters: int | None
    holdout_curve: tuple[tuple[int, float, float], ...] = ()
    """(step, recall@1, MRR) of the held-out check along training, step 0 first; empty: not recorded."""
    contrastive_batch: int | None = None
    """Records in one softmax, as the run recorded it (None: not recorded)."""
    hard_negatives: float | None = None
    """Hard negatives per training record (mean), as the run recorded it (None: not recorded)."""

    @property
    def losses(self) -> list[tuple[float, float]]:
        """The logged (step, loss) pairs that carry a loss."""
        return [(step, loss) for step, loss in self.loss_history if loss is not None]


@dataclass(frozen=True)
class Run:
    """One run of the study: which design, its main score per task (None: failed) and its training."""

    key: str
    label: str
    design: str | None
    number: int | None
    trained: bool
    pooling: str | None
    attention: str | None
    group: str
    """The design key shared by the runs of one design trained with different seeds."""
    group_label: str
    seed: int | None
    scores: Mapping[str, float | None]
    """Every task the run attempted; None where it failed."""
    train: Training | None
    eval_seconds: float | None

    def score(self, task: str) -> float | None:
        return self.scores.get(task)


@dataclass(frozen=True)
class Task:
    name: str
    category: str
    metric: str | None


@dataclass(frozen=True)
class StudyResults:
    name: str | None
    backbone: str | None
    version: str | None
    started: str | None
    finished: str | None
    machine: Machine | None
    settings: Settings | None
    """From the trained runs' recorded identities if any, else results.json's study config; None: not recorded."""
    run_differences: tuple[str, ...]
    """How the trained runs differ beyond their design (empty when they share every setting)."""
    tasks: Mapping[str, Task]
    """The tasks results.json declares (a run may have scored others: see `tasks_by_category`)."""
    runs: Mapping[str, Run]
    source: Path | None = None
    """The results.json read, if it came from a file."""

    def run_order(self) -> list[str]:
        """Run keys in report order: untrained runs first, then designs by number, then other designs by key."""

        def rank(key: str) -> tuple[int, float, str]:
            run = self.runs[key]
            if not run.trained or key == "baseline":
                return (0, 0, key)
            return (1, run.number, key) if isinstance(run.number, int) else (2, 0, key)

        return sorted(self.runs, key=rank)

    def tasks_by_category(self) -> dict[str, list[str]]:
        """{category: [task, ...]} in the paper's category order, tasks sorted; unknown tasks go under 'other'."""
        names = set(self.tasks).union(*(run.scores for run in self.runs.values()))
        grouped: dict[str, list[str]] = {}
        for name in sorted(names):
            task = self.tasks.get(name)
            category = task.category if task else UNKNOWN_CATEGORY
            if task is None:
                logger.warning("task %r has scores but no entry in results['tasks']; reported under %r", name, category)
            grouped.setdefault(category, []).append(name)
        order = list(CATEGORY_ORDER) + sorted(c for c in grouped if c not in CATEGORY_ORDER)
        return {c: grouped[c] for c in order if c in grouped}


# --------------------------------------------------------------------------------------------- loading


def _score(value: object) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _training(raw: Mapping[str, Any] | None) -> Training | None:
    if not raw:
        return None
    params = raw.get("trainable_parameters") or {}
    return Training(raw.get("steps"), raw.get("seconds"),
                    tuple((step, loss) for step, loss in raw.get("loss_history") or []),
                    _get(raw, "holdout_before.recall@1"), _get(raw, "holdout_after.recall@1"),
                    params.get("lora"), params.get("head"),
                    tuple((int(step), float(r1), float(mrr)) for step, r1, mrr in raw.get("holdout_curve") or []),
                    raw.get("contrastive_batch"), raw.get("hard_negatives"))


def _run(key: str, raw: Mapping[str, Any]) -> Run:
    return Run(key=key, label=raw.get("label") or key, design=raw.get("design"), number=raw.get("number"),
               trained=bool(raw.get("trained", True)), pooling=raw.get("pooling"), attention=raw.get("attention"),
               group=str(raw.get("group") or key),
               group_label=raw.get("group_label") or raw.get("label") or str(raw.get("group") or key),
               seed=raw.get("seed"), scores={t: _score(v) for t, v in (raw.get("scores") or {}).items()},
               train=_training(raw.get("train")), eval_seconds=raw.get("eval_seconds"))


def _recorded_settings(raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """The config the trained runs recorded (the first one's) and how the others differ from it; without any
    recorded identity, results.json's study config and no differences."""
    runs = [(r.get("label", k), r.get("identity")) for k, r in raw["runs"].items() if r.get("trained")]
    recorded = [(label, identity) for label, identity in runs if identity]
    if not recorded:
        return (raw.get("study") or {}).get("config") or {}, ()
    (first_label, first), differences = recorded[0], []
    ignore = ["study", *(".".join(k) for k in DESIGN_KEYS)]
    for label, identity in recorded[1:]:
        found = identity_differences(first, identity, ignore=ignore)
        if found:
            differences.append(f"{label} differs from {first_label}: {'; '.join(found)}")
    differences += [f"{label} recorded no settings (made by an older poolattn)" for label, identity in runs
                    if not identity]
    return first.get("config") or {}, tuple(differences)


def read_results_json(path: str | Path) -> dict[str, Any]:
    """results.json's content. Raises ValueError naming the file when it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"results file {str(path)!r} is not valid JSON: {exc}") from exc


def load_results(results: StudyResults | Mapping[str, Any] | str | Path) -> StudyResults:
    """A study's results, typed: from a results.json path or its content (as `run_study` builds it).

    Raises:
        TypeError: `results` is neither a mapping nor a path.
        ValueError: the file is not JSON or lacks `runs`, or a run's `scores` is not a mapping.
    """
    if isinstance(results, StudyResults):
        return results
    source = Path(results) if isinstance(results, (str, Path)) else None
    raw = read_results_json(source) if source is not None else results
    if not isinstance(raw, Mapping):
        raise TypeError(f"results must be a mapping (results.json's content) or its path, got {type(raw).__name__}")
    if not isinstance(raw.get("runs"), Mapping):
        raise ValueError(f"results needs a 'runs' mapping (as results.json writes); got keys {sorted(raw)}")
    for key, run in raw["runs"].items():
        if not isinstance(run, Mapping) or not isinstance(run.get("scores", {}), Mapping):
            raise ValueError(f"run {key!r} must be a mapping with a 'scores' mapping of task -> main score")
    study = raw.get("study") or {}
    config, differences = _recorded_settings(raw)
    machine = study.get("machine") or {}
    return StudyResults(
        name=study.get("name"), backbone=study.get("backbone"), version=study.get("poolattn_version"),
        started=study.get("started"), finished=study.get("finished"),
        machine=Machine(machine.get("cpu"), machine.get("threads"), machine.get("cpu_capability"),
                        machine.get("torch"), machine.get("device")) if machine else None,
        settings=Settings.from_config(config) if config else None, run_differences=differences,
        tasks={name: Task(name, (info or {}).get("category") or UNKNOWN_CATEGORY, (info or {}).get("main_score_name"))
               for name, info in (raw.get("tasks") or {}).items()},
        runs={key: _run(key, run) for key, run in raw["runs"].items()}, source=source)


def _bidirectional_layers(value: object) -> object:
    return value if value == "same" else tuple(value or ())
