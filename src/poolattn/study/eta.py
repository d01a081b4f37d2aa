"""How long a study plan takes on this machine, from a short calibration on the plan's own work.

Training: each trained design runs a couple of real contrastive steps (same backbone, dtype, max length, batch,
LoRA, head, loss path) and its step time x its planned steps is its training time; the held-out check encodes
its records before and after training (and every `eval_steps`), timed on the same training model as the check
uses it (unmerged adapters, the training attention kernel, `per_device_eval_batch_size`). Evaluation: mteb runs
the plan's tasks once with a recording random encoder (no model), which gives mteb's own time (loading, classifier
fits, scoring: the part that does not depend on the model) and exactly the texts it asks to encode, with their
instructions; an even sample of those texts is then encoded at the evaluation batch size and dtype, as each run is
evaluated: the untrained baseline with its adapters merged, a trained run as `Embedder.load` rebuilds it (merged
in float32, unmerged in bfloat16, where peft's float32 side path made encoding 2.5x slower). Seconds per text x
texts is the encoding time of a run. The estimate keeps these parts apart, so a reader (and a test) can see what
it is made of.

The frozen-prefix cache (backbone/prefix.py) makes some runs cheaper than others, and the estimate follows it:
the sample is encoded twice, with every layer (what the first run of an attention mode costs) and with the frozen
layers' output found in the cache (what a later run of that mode costs, when it needs nothing the earlier runs did
not store: a multi-layer head also needs its per-layer vectors). Training needs no such rule: the designs are
calibrated in the plan's order on their own first batches, so a later design of a mode and seed meets the
batches the earlier one stored, as it will in the study.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from poolattn.backbone.prefix import PrefixCache
from poolattn.backbone.prefix_store import PrefixStore
from poolattn.config import Config, merge
from poolattn.data.records import TripleDataset
from poolattn.evaluation.baselines import RandomEncoder
from poolattn.evaluation.run import evaluate
from poolattn.model import Embedder
from poolattn.pooling.multilayer import default_layer_summary
from poolattn.speed import time_encode, time_train_steps, training_model
from poolattn.study.plan import StudyPlan, expand_tasks, prefix_cache_off
from poolattn.training.recipe import batch_sampler, batch_tokens, planned_steps
from poolattn.training.run import training_split

logger = logging.getLogger(__name__)

ENCODE_SAMPLE = 96  # texts of the evaluation encoded for the rate: three batches of 32
HOLDOUT_SAMPLE = 32  # held-out records (64 texts) encoded per trained design for the held-out check's rate
TOKEN_SAMPLE_STEPS = 64  # planned batches whose tokens give a run's mean step


@dataclass(frozen=True)
class EncodeRate:
    """Seconds per text of an encoding that runs every layer (`cold`) or finds its frozen prefix in the cache
    (`warm`; None where the cache is off)."""

    cold: float
    warm: float | None = None

    def seconds(self, warm: bool) -> float:
        return self.warm if warm and self.warm is not None else self.cold


@dataclass(frozen=True)
class Calibration:
    """Measured on this machine: seconds per training step by run key, evaluation's parts, encode rate."""

    step_seconds: dict[str, float]
    eval_overhead_seconds: float   # one evaluation of the plan's tasks minus its encoding
    eval_texts: int                # texts one evaluation encodes
    encode_seconds_per_text: float  # every layer run: the prefix cache off, or the first run of an attention mode
    seconds: float = 0.0           # how long the calibration itself took
    # the frozen layers' output read from the prefix cache; None where the cache is off (see `prefix_cache`)
    encode_seconds_per_text_warm: float | None = None
    prefix_cache: str = "not calibrated"  # "on (...)" or "off: <why>", as the evaluation and training models found it
    # each trained run's evaluation, where it differs from the baseline's (adapters unmerged below float32), timed
    # once per LoRA layout and attention mode; a run missing here is timed at the baseline's rate
    trained_encode: dict[str, EncodeRate] = field(default_factory=dict)
    # each trained run's held-out checks, on its training model; a run missing here is timed at the baseline's rate
    holdout: dict[str, EncodeRate] = field(default_factory=dict)

    def encode_seconds(self, warm: bool, *, run: str | None = None) -> float:
        """Seconds per text of an evaluation encoding that finds its frozen prefix in the cache (`warm`) or runs
        every layer, for the untrained baseline or trained run `run`."""
        if run in self.trained_encode:
            return self.trained_encode[run].seconds(warm)
        return EncodeRate(self.encode_seconds_per_text, self.encode_seconds_per_text_warm).seconds(warm)

    def holdout_seconds(self, key: str, warm: bool) -> float:
        """Seconds per text of run `key`'s held-out check."""
        if key in self.holdout:
            return self.holdout[key].seconds(warm)
        return self.encode_seconds(warm)


@dataclass(frozen=True)
class Estimate:
    """Seconds per part of the plan; `total` is their sum."""

    train: dict[str, float] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)

    @property
    def train_total(self) -> float:
        return sum(self.train.values())

    @property
    def eval_total(self) -> float:
        return sum(self.eval.values())

    @property
    def total(self) -> float:
        return self.train_total + self.eval_total

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.total / 60))


class _RecordingEncoder:
    """Random unit vectors (the suite's negative control), keeping every text and instruction asked for."""

    def __init__(self, dim: int) -> None:
        self.inner = RandomEncoder(dim=dim)
        self.calls: list[tuple[str, str | None]] = []

    @property
    def embedding_dim(self) -> int:
        return self.inner.embedding_dim

    def encode(self, texts: Sequence[str], *, instruction: str | Sequence[str | None] | None = None,
               batch_size: int = 32, show_progress: bool = True) -> np.ndarray:
        texts = list(texts)
        instructions = [instruction] * len(texts) if isinstance(instruction, str) or instruction is None else list(
            instruction)
        self.calls += list(zip(texts, instructions))
        return self.inner.encode(texts)


def _planned_steps(run_config: Config, dataset: TripleDataset | None = None) -> int:
    """The optimizer steps `train` will take: max_steps, or epochs of the recipe's batches over the training part
    (`dataset`, where the caller has it)."""
    if run_config.train.max_steps > 0:
        return run_config.train.max_steps
    if dataset is None:
        dataset, _ = training_split(run_config)
    return planned_steps(run_config, len(batch_sampler(run_config, dataset)))


def _holdout_encodes(run_config, steps: int) -> int:
    """Texts the held-out check encodes in one training run: 2 per record, before training, at every multiple of
    eval_steps, and after the last step unless that step was a multiple (HoldoutCallback measures it once)."""
    holdout, every = run_config.data.holdout, run_config.train.eval_steps
    if not holdout:
        return 0
    checks = 1 + (steps // every + (1 if steps % every else 0) if every else 1)
    return 2 * holdout * checks


def prefix_key(run_config: Config) -> tuple[str, tuple | None] | None:
    """What a run's encodings need from the prefix cache: its attention mode and, for a multi-layer head, the
    per-layer vectors it reads (summary, layers; () = every layer); None where its config turns the cache off."""
    model = run_config.model
    if prefix_cache_off(run_config) is not None:
        return None
    pooling = model.pooling
    if pooling.name != "multilayer":
        return model.attention, None
    summary = pooling.layer_summary
    if summary == "auto":
        summary = default_layer_summary(model.attention)
    return model.attention, (summary, tuple(pooling.layers or ()))


class _Seen:
    """Which cache entries earlier runs of the plan left: every run stores the states of its mode and per-layer
    vectors (its own head's, or those the default multi-layer head of the mode reads); a later run is warm when
    they hold all it needs."""

    def __init__(self) -> None:
        self.stored: set[tuple] = set()

    def warm(self, key: tuple[str, tuple | None] | None) -> bool:
        if key is None:
            return False
        mode, vectors = key
        found = any(m == mode and (vectors is None or v == vectors) for m, v in self.stored)
        self.stored.add(key if vectors is not None else (mode, (default_layer_summary(mode), ())))
        return found


def estimate(plan: StudyPlan, calibration: Calibration) -> Estimate:
    """Seconds for each run's training and evaluation, from `calibration` and the plan's own counts.

    With the prefix cache on, an evaluation (or a run's held-out checks) costs the warm rate when an earlier run of
    the plan stored what it needs (`prefix_key`), the cold rate otherwise; a run's held-out checks after its first
    always find the held-out texts stored by the first. Training reads only entries of its own seed
    (`PrefixCache.scope`), so held-out texts are stored once per seed.
    """
    overhead, texts = calibration.eval_overhead_seconds, calibration.eval_texts
    evaluated, held_out = _Seen(), defaultdict(_Seen)
    train, eval_ = {}, {}
    for run in plan.runs:
        key = prefix_key(run.config)
        if run.trained:
            steps = _planned_steps(run.config)
            encodes = _holdout_encodes(run.config, steps)
            first = min(encodes, 2 * run.config.data.holdout)  # the first check: cold unless an earlier run stored it
            checks = (first * calibration.holdout_seconds(run.key, held_out[run.config.train.seed].warm(key))
                      + (encodes - first) * calibration.holdout_seconds(run.key, key is not None))
            train[run.key] = steps * calibration.step_seconds[run.key] + checks
        rate = calibration.encode_seconds(evaluated.warm(key), run=run.key if run.trained else None)
        eval_[run.key] = overhead + texts * rate
    return Estimate(train, eval_)


def evaluation_texts(plan: StudyPlan, dim: int) -> tuple[list[tuple[str, str | None]], float]:
    """Every (text, instruction) one evaluation of the plan's tasks encodes, and the seconds mteb itself took.

    mteb runs the tasks once with random unit vectors for an encoder: its own work (loading, classifier fits,
    scoring) is timed, and the texts it asks for are recorded instead of encoded.
    """
    recorder = _RecordingEncoder(dim)
    start = time.perf_counter()
    evaluate(recorder, expand_tasks(plan.tasks), None, batch_size=plan.runs[0].config.eval.batch_size,
             show_progress=False)
    return recorder.calls, time.perf_counter() - start


def calibrate(plan: StudyPlan, *, steps: int = 1, encode_sample: int = ENCODE_SAMPLE,
              holdout_sample: int = HOLDOUT_SAMPLE) -> Calibration:
    """Time `steps` training steps and a held-out check of every trained design, and the evaluation's parts.

    Each design is timed once, on its first seed, after one untimed warm-up step: a model's first step carries
    costs that a run's many steps amortise (allocator growth, and the prefix cache's one full-pass check of its
    first batch, about a third of a step). A step costs its tokens: the timed rate (tokens a second) is applied to
    the mean tokens of the run's own batches, since batches drawn from one source each differ in length (the
    embedded study's timed batch held 1,821 tokens, the mean batch of its seed-42 runs 3,148). Its other seeds do
    the same work on other batches. The held-out check is timed on the same model, on `holdout_sample` of the run's
    held-out records.

    The evaluation is timed first, before any training step: `poolattn study` evaluates in a child process whose
    heap no training has touched (study/processes.py), and in a heap that training has used, encoding ran up to
    1.9x slower. The held-out checks run inside training, so they are timed after the training steps, as they run.
    """
    start = time.perf_counter()
    step_seconds: dict[str, float] = {}
    by_design: dict[str, tuple[float, EncodeRate | None]] = {}
    said: list[str] = []
    first = plan.runs[0]
    model = Embedder.from_config(merge(first.config, {"model": {"dtype": first.config.eval.dtype}}).model)
    texts, overhead = evaluation_texts(plan, model.embedding_dim)
    stride = max(1, len(texts) // max(encode_sample, 1))
    sample = texts[::stride][:encode_sample] or [("", None)]
    words, instructions = [t for t, _ in sample], [i for _, i in sample]
    batch = first.config.eval.batch_size
    trained: dict[str, EncodeRate] = {}
    timed: dict[str, EncodeRate] = {}  # by the label of the first design of each layout, for the log
    if next(model.backbone.parameters()).dtype != torch.float32:
        # as Embedder.load keeps a trained run: unmerged. Its cost follows its LoRA layers and attention (LoRA on
        # every layer leaves no frozen prefix, and each adapted layer adds peft's float32 side path): 19.6 ms a text
        # timed for design 1, 24.9 ms for designs 4-5 with LoRA on all 30 layers (AMX Xeon, bfloat16)
        by_layout: dict[tuple, EncodeRate] = {}
        for run in plan.runs:
            if run.trained:
                layout = _eval_layout(run.config)
                if layout not in by_layout:
                    own = model if layout == _eval_layout(first.config) else Embedder.from_config(
                        merge(run.config, {"model": {"dtype": run.config.eval.dtype}}).model)
                    by_layout[layout] = timed[run.design.label] = _encode_rate(own, words, instructions, batch)
                trained[run.key] = by_layout[layout]
    baseline = _encode_rate(model.merge_lora(), words, instructions, batch)
    evaluation_state = f"evaluation {_cache_state(model)}"
    for run in plan.runs:
        if run.trained:
            if run.group_key not in by_design:
                trainee = training_model(run.config)
                rate = time_train_steps(run.config, steps, model=trainee)
                tokens = _tokens_per_step(run.config, trainee)
                step = tokens / max(rate.tokens_per_s, 1e-9)
                logger.info("calibration: %s, %.2f s per training step (%.0f tokens a second x %.0f tokens in the "
                            "run's mean batch; the timed batch had %.0f)", run.design.label, step, rate.tokens_per_s,
                            tokens, rate.tokens / max(rate.items, 1))
                by_design[run.group_key] = step, _holdout_rate(trainee, run.config, holdout_sample)
                said.append(f"training {_cache_state(trainee)}")
            step_seconds[run.key] = by_design[run.group_key][0]
    holdout_rates = {run.key: by_design[run.group_key][1] for run in plan.runs
                     if run.trained and by_design[run.group_key][1] is not None}
    calibration = Calibration(step_seconds, overhead, len(texts), baseline.cold, time.perf_counter() - start,
                              baseline.warm, "; ".join(dict.fromkeys([*said, evaluation_state])), trained,
                              holdout_rates)
    logger.info("calibration: evaluation encodes %d texts at %.1f ms each (%s with the frozen prefix cached%s), "
                "plus %.1f s of mteb's own work; calibrated in %.0f s", len(texts), 1000 * baseline.cold,
                "no cache" if baseline.warm is None else f"{1000 * baseline.warm:.1f} ms",
                "".join(f"; trained, adapters unmerged, as {label}: {1000 * rate.cold:.1f} ms"
                        for label, rate in timed.items()),
                overhead, calibration.seconds)
    return calibration


def _eval_layout(run_config: Config) -> tuple:
    """What sets a trained run's evaluation cost beyond the baseline's: its attention mode and adapted layers."""
    model = run_config.model
    layers = model.lora_layers
    return model.attention, None if layers is None else tuple(layers)


def _encode_rate(model: Embedder, texts: list[str], instructions: list[str | None], batch_size: int) -> EncodeRate:
    """Seconds per text encoding `texts` with every layer, and (where `model` has a prefix cache and it is on here)
    with the frozen prefix found in a cache of its own, filled first. The model keeps a cache of its own after."""
    cache, model.prefix_cache = model.prefix_cache, None
    cold = time_encode(model, texts, batch_size=batch_size, instructions=instructions).seconds_per_item
    warm = None
    if cache is not None:
        model.prefix_cache = PrefixCache(PrefixStore())  # nothing from earlier calibrations
        model.encode(texts, instruction=instructions, batch_size=batch_size, show_progress=False)  # fills it
        rate = time_encode(model, texts, batch_size=batch_size, instructions=instructions).seconds_per_item
        warm = rate if model.prefix_cache.last_reason is None else None
    return EncodeRate(cold, warm)


def _tokens_per_step(run_config: Config, model: Embedder, limit: int = TOKEN_SAMPLE_STEPS) -> float:
    """Mean real tokens (EOS included, as a training step counts them) of the run's first planned batches: its
    training part in the recipe's order, at most `limit` of them."""
    dataset, _ = training_split(run_config)
    counts = batch_tokens(run_config, dataset, model.text_tokenizer, min(limit, _planned_steps(run_config, dataset)))
    return float(np.mean(counts)) if counts else 0.0


def _holdout_rate(model: Embedder, run_config: Config, sample: int) -> EncodeRate | None:
    """The held-out check's seconds per text on the run's training model (what `HoldoutCallback` encodes: queries
    with their instructions, then positives, at `per_device_eval_batch_size`); None without held-out records."""
    if not run_config.data.holdout or sample < 1:
        return None
    _, records = training_split(run_config)
    records = records[:sample]
    texts = [r.query for r in records] + [r.positive for r in records]
    instructions = [r.instruction for r in records] + [None] * len(records)
    cache = model.prefix_cache
    try:
        return _encode_rate(model, texts, instructions, run_config.train.per_device_eval_batch_size)
    finally:
        model.prefix_cache = cache


def _cache_state(model: Embedder) -> str:
    """"prefix cache on (...)" or "prefix cache off: why", as the model's last batch found it."""
    if model.prefix_cache is None:
        return "prefix cache off: model.prefix_cache is off"
    plan = model.prefix_cache.plan(model)
    if plan.reason is not None:
        return f"prefix cache off: {plan.reason}"
    return f"prefix cache on (layers 0..{plan.first_adapted - 1} of {plan.num_layers} run once per text)"


def describe_estimate(estimate_: Estimate) -> list[str]:
    """`key=value` lines for --dry-run: the whole in minutes (rounded up), its parts in seconds."""
    out: dict[str, object] = {
        "estimated_minutes": estimate_.minutes,
        "estimated_train_seconds": f"{estimate_.train_total:.2f}",
        "estimated_eval_seconds": f"{estimate_.eval_total:.2f}",
    }
    return [f"{k}={v}" for k, v in out.items()]


def describe_calibration(calibration: Calibration) -> list[str]:
    """What the estimate rests on, for --dry-run: the prefix cache as the calibration's models found it."""
    return [f"prefix_cache={calibration.prefix_cache}"]
