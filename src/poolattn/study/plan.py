"""A study plan: which runs, with which configs, evaluated on which tasks. Pure: builds no model, reads no data.

Every design gets the base config with only `model.attention` and `model.pooling.name` changed, so the designs
share data, seed, steps and every other hyper-parameter; `check_controlled` proves it for each plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poolattn.config import BF16_UNSET, Config, merge
from poolattn.designs import Design, get_design
from poolattn.errors import InputError

RUNS_DIR = "runs"
# the only settings allowed to differ between the designs of one study
DESIGN_KEYS = {("model", "attention"), ("model", "pooling", "name"), ("train", "output_dir")}
# and, between runs of different seeds (study.seeds), the seeds
SEED_KEYS = {("model", "seed"), ("train", "seed")}


@dataclass(frozen=True)
class RunPlan:
    """One row of the study: a design to train (or not, for the baseline) and evaluate."""

    key: str
    label: str
    design: Design
    trained: bool
    config: Config
    folder: Path
    group: str = ""
    """The design's key, shared by its runs with different seeds ('' = the run's own key)."""
    seed: int | None = None
    """The seed of this run when the study trains several (study.seeds), else None."""

    @property
    def group_key(self) -> str:
        return self.group or self.key

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"

    @property
    def eval_dir(self) -> Path:
        return self.folder / "eval"


@dataclass(frozen=True)
class StudyPlan:
    config: Config
    output_dir: Path
    runs: list[RunPlan]
    tasks: list[str]


def _settings(config: Config) -> dict[tuple[str, ...], object]:
    """Every leaf of a run's config tree by its path, e.g. ('train', 'learning_rate') -> 0.001."""
    out: dict[tuple[str, ...], object] = {}
    pending: list[tuple[tuple[str, ...], object]] = [((), config.to_dict())]
    while pending:
        prefix, node = pending.pop()
        if isinstance(node, dict):
            pending.extend((prefix + (str(key),), value) for key, value in node.items())
        else:
            out[prefix] = node
    return out


def check_controlled(runs: list[RunPlan]) -> None:
    """Raise if two trained runs differ in anything but their design, their seed and where they are written."""
    trained = [r for r in runs if r.trained]
    if len(trained) < 2:
        return
    first = _settings(trained[0].config)
    for run in trained[1:]:
        other = _settings(run.config)
        allowed = DESIGN_KEYS | (SEED_KEYS if run.seed != trained[0].seed else set())
        differing = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k) and k not in allowed)
        if differing:
            raise InputError(f"study runs {trained[0].key} and {run.key} differ in {['.'.join(k) for k in differing]}")


def expand_tasks(names: list[str]) -> list[str]:
    """'suite' and category names become the offline suite's task names; other names pass through."""
    if not any(n == "suite" or n in _categories() for n in names):
        return list(names)
    # lazy: evaluation.tasks imports mteb (~6 s), which a plan of named tasks does not need
    from poolattn.evaluation.tasks import list_offline_tasks

    suite = list_offline_tasks()
    out: list[str] = []
    for name in names:
        if name == "suite":
            picked = [t["name"] for t in suite]
        elif name in _categories():
            picked = [t["name"] for t in suite if t["category"] == name]
        else:
            picked = [name]
        out += [p for p in picked if p not in out]
    return out


def _categories() -> set[str]:
    return {"retrieval", "sts", "classification", "clustering", "pair_classification", "reranking", "summarization"}


def make_plan(config: Config) -> StudyPlan:
    """Runs for `config.study.designs` (+ the untrained baseline), each writing under study.output_dir/runs/<key>.

    With `study.seeds`, each design is trained once per seed, as run `<design>-seed<seed>` in group `<design>`, with
    `model.seed` (head initialisation) and `train.seed` (data order, LoRA dropout) set to that seed; the untrained
    baseline stays one run.
    """
    out = Path(config.study.output_dir)
    runs: list[RunPlan] = []
    if config.study.baseline is not None:
        design = get_design(config.study.baseline)
        cfg = merge(config, {**design.overrides(), "train": {"output_dir": str(out / RUNS_DIR / "baseline" / "model")}})
        runs.append(RunPlan("baseline", f"untrained baseline ({design.label})", design, False, cfg,
                            out / RUNS_DIR / "baseline"))
    seen = set()
    for entry in config.study.designs:
        design = get_design(entry)
        key = str(design.number) if design.number else design.name
        if key in seen:
            raise InputError(f"study.designs lists design {entry!r} twice")
        seen.add(key)
        if config.study.seeds is None:
            folder = out / RUNS_DIR / key
            cfg = merge(config, {**design.overrides(), "train": {"output_dir": str(folder / "model")}})
            runs.append(RunPlan(key, design.label, design, True, cfg, folder))
            continue
        for seed in config.study.seeds:
            run_key = f"{key}-seed{seed}"
            folder = out / RUNS_DIR / run_key
            # two merges: a dict literal with "model" twice would keep only the seed and drop the design
            cfg = merge(merge(config, design.overrides()), {"model": {"seed": seed},
                                                            "train": {"output_dir": str(folder / "model"), "seed": seed}})
            runs.append(RunPlan(run_key, f"{design.label}, seed {seed}", design, True, cfg, folder, key, seed))
    check_controlled(runs)
    return StudyPlan(config, out, runs, list(config.eval.tasks))


def prefix_cache_off(config: Config) -> str | None:
    """Why the config alone turns the frozen-prefix cache (backbone/prefix.py) off, or None; each model checks the
    rest (family, dropout, trainable parameters below the cut) when it runs, and logs its decision."""
    model = config.model
    if model.prefix_cache == "off":
        return "model.prefix_cache: off"
    if model.lora.enabled and not model.lora_layers:
        bidirectional = model.attention == "bidirectional" and model.lora.bidirectional_layers != "same"
        setting = "model.lora.bidirectional_layers: null" if bidirectional else "model.lora.layers unset"
        return f"LoRA adapts every layer ({setting}), so no layer is frozen below the first adapted one"
    return None


def prefix_cache_plan(plan: StudyPlan) -> str:
    """The plan's prefix_cache line: off and why, or what it will cache; per design (and for the untrained
    baseline, which is evaluated too) where they differ."""
    by_design = {run.design.label if run.trained else run.label: _prefix_cache_line(run.config) for run in plan.runs}
    if len(set(by_design.values())) == 1:
        return next(iter(by_design.values()))
    return "".join(f"\n    {label}: {line}" for label, line in by_design.items())


def _prefix_cache_line(config: Config) -> str:
    off = prefix_cache_off(config)
    if off == "model.prefix_cache: off":
        return f"off ({off})"
    if off is not None:
        return f"off: {off}"
    cut = "the lowest LoRA layer" if config.model.lora.enabled else "the final norm"
    return (f"auto: the layers below {cut} run once per text and attention mode; every later run of the study "
            f"that meets the same text reuses their output (each model checks that this is exact and logs it; "
            f"--dry-run's estimate says what the calibration found)")


def describe(plan: StudyPlan) -> str:
    """The `--dry-run` text: backbone, data, every hyper-parameter, designs and tasks."""
    c = plan.config
    data = c.data.dataset_name or c.data.dataset_file_path or "bundled training set (poolattn/resources/train)"
    lines = [
        f"study: {plan.output_dir}",
        f"backbone: {c.model.backbone}",
        f"data: {data}" + (f" (first {c.data.max_records} records)" if c.data.max_records else ""),
        f"designs: {', '.join(r.label for r in plan.runs)}",
        f"seeds: {c.study.seeds if c.study.seeds else f'one run per design (model.seed={c.model.seed}, train.seed={c.train.seed})'}",
        "",
        "model (shared):",
        f"  max_length={c.model.max_length} dtype={c.model.dtype} attn_implementation={c.model.attn_implementation} "
        f"padding_side={c.model.padding_side} exclude_instruction={c.model.exclude_instruction}",
        f"  lora: r={c.model.lora.r} alpha={c.model.lora.alpha} dropout={c.model.lora.dropout} "
        f"targets={','.join(c.model.lora.target_modules)} layers={c.model.lora.layers or 'all'}"
        + (f" bidirectional_layers={c.model.lora.bidirectional_layers or 'all'}"
           if c.model.lora.bidirectional_layers != "same" else ""),
        f"  pooling head: preset={c.model.pooling.preset} num_latents={c.model.pooling.num_latents} "
        f"num_heads={c.model.pooling.num_heads} head_dim={c.model.pooling.head_dim} ff_mult={c.model.pooling.ff_mult} "
        f"init={c.model.pooling.init}",
        f"  prefix_cache={prefix_cache_plan(plan)}",
        "loss:",
        f"  {c.loss.name} scale={c.loss.scale} contrastive_batch={c.loss.contrastive_batch} "
        f"grad_cache_chunk_size={c.loss.grad_cache_chunk_size} grad_cache={c.loss.grad_cache}",
        "train:",
    ]
    train = c.train
    for name in ("learning_rate", "head_learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type", "weight_decay", "max_grad_norm",
                 "bf16", "fp16", "attn_implementation", "seed", "save_steps", "save_total_limit", "logging_steps"):
        value = getattr(train, name)
        if name == "bf16" and value is None:
            value = f"auto ({BF16_UNSET})"
        lines.append(f"  {name}={value}")
    lines += [f"  contrastive batch per step = {train.local_batch}"
              " x processes", "evaluation:", f"  batch_size={c.eval.batch_size} dtype={c.eval.dtype}"]
    tasks = expand_tasks(plan.tasks)
    lines.append(f"tasks ({len(tasks)}): {', '.join(tasks)}")
    return "\n".join(lines)
