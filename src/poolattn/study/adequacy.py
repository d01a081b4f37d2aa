"""Did a run learn enough for its scores to speak for its design? A stated rule over evidence, not a loss slope.

A design compared after a run that never left chance says nothing about the design, in either direction: its
"agree" is as empty as its "disagree". The rule (`RULE`, printed in the report) reads three pieces of evidence:

- the training loss against chance. An InfoNCE loss whose logits carry no information is ln(candidates per
  softmax), here the contrastive batch's records x (1 positive + the hard negatives per record): ln 64 = 4.16 for
  32 records with one hard negative each. The last quarter's mean is compared with it, not with the first logged
  loss, and not by a slope: batch to batch the loss jumps between about 0 and 4.5 (batch difficulty, shared by
  every design on the same batches), so a slope over ten losses has no power, while a mean of ten still
  separates 80% of chance from 45% (`loss_rule_detection` simulates it with a study's own losses).
- the held-out recall@1 gain (after - before training, on the records held back from training), in absolute
  terms and against the reference design's gain.
- the held-out curve (the same check every `train.eval_steps` steps): a run whose recall@1 still rose by more than
  `RISE` over the last quarter of its steps was stopped while still learning. Runs without a curve (made before
  it was recorded) cannot be assessed on this and the report says so.

The training losses are also shown against the reference design's on the same batches (same training seed), for
the reader; that difference is not part of the rule.

An inadequate run, on either side of a comparison, gives no verdict at all (analysis.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from poolattn.study.results import Run, Settings

WINDOW = 0.25
"""The final fraction of training steps whose mean loss is read, and over which the curve may not still rise."""

CHANCE_FRACTION = 0.60
"""The last quarter's mean training loss must be below this fraction of chance."""

MIN_GAIN = 0.20
"""Smallest held-out recall@1 gain (after - before training) of an adequate run."""

FAR_BELOW = 0.25
"""An adequate run's held-out gain is at least this fraction of the reference design's: a design that learns less
than the reference is a finding, one that learns less than a quarter of it most likely did not train."""

RISE = 0.10
"""Largest held-out recall@1 rise over the last quarter of the steps of a run that has levelled off (20 of 200
held-out queries): with two independent draws of 200 queries at recall 0.5 a flat curve exceeds it 1.2% of the time
(`curve_rule_detection`); the checks share their queries, so the real rate is lower."""

BUNDLED_HARD_NEGATIVES = 1
"""Hard negatives per record of the bundled training set (each of its 24,000 records has one): what a run that
did not record its count trained with when its data was the bundled set."""

INADEQUATE_MARK = " (inadequate)"

RULE = (f"a run is inadequate, and gives no verdict, when its mean training loss over the last {WINDOW:.0%} of its "
        f"steps is not below {CHANCE_FRACTION:.0%} of chance (ln of the candidates per softmax), or its held-out "
        f"recall@1 rose over training by less than {MIN_GAIN:.2f} or by less than {FAR_BELOW:.0%} of the reference "
        f"design's rise, or its held-out curve still rose by more than {RISE:.2f} over the last {WINDOW:.0%} of its "
        f"steps (not assessable for a run without a curve)")

LOSS, GAIN, RISING = "loss", "gain", "rising"


def marked(label: str, inadequate: bool) -> str:
    """A run's label as every table prints it: marked when the rule calls it inadequate."""
    return label + (INADEQUATE_MARK if inadequate else "")


def candidates_per_softmax(run: Run, settings: Settings | None) -> int | None:
    """Documents in one query's softmax: contrastive records x (1 + hard negatives per record); None: unknown.

    From the run's recorded training when it has them, else from the settings: the per-device batch x accumulation
    (one process, as the study trains) and, for the bundled training set, its one hard negative per record.
    """
    train = run.train
    records = train.contrastive_batch if train else None
    negatives = train.hard_negatives if train else None
    if records is None and settings is not None:
        batch, accumulation = settings.per_device_batch, settings.accumulation
        if isinstance(batch, int) and isinstance(accumulation, int):
            records = batch * accumulation
    if negatives is None and settings is not None and settings.data is not None \
            and settings.data.source == "the bundled training set":
        negatives = BUNDLED_HARD_NEGATIVES
    if records is None or negatives is None:
        return None
    return round(records * (1 + negatives))


def _window_mean(losses: Sequence[tuple[float, float]], last: float) -> float | None:
    values = [loss for step, loss in losses if step > last * (1 - WINDOW) and math.isfinite(loss)]
    return float(np.mean(values)) if values else None


def _at_or_before(curve: Sequence[tuple[int, float, float]], step: float) -> tuple[int, float, float] | None:
    points = [p for p in curve if p[0] <= step]
    return max(points, key=lambda p: p[0]) if points else None


@dataclass(frozen=True)
class Adequacy:
    """One run's evidence of having learned, and the rule's reading of it."""

    candidates: int | None
    chance: float | None
    """ln(candidates): the loss of logits that carry no information."""
    loss_last_quarter: float | None
    """Mean logged training loss over the last WINDOW of the steps."""
    loss_vs_reference: float | None
    """Mean of (this run's loss - the reference run's) over the last WINDOW's steps both logged, on the same batches
    (same training seed); None for the reference itself or when the batches differ."""
    gain: float | None
    """Held-out recall@1 after - before training."""
    reference_gain: float | None
    half: tuple[int, float] | None
    """(step, held-out recall@1) of the curve's last point at or before half the steps; None without a curve."""
    final: tuple[int, float] | None
    """(step, held-out recall@1) of the curve's last point."""
    late_rise: float | None
    """Held-out recall@1 rise over the last WINDOW of the steps, on the curve; None without one."""
    reasons: tuple[str, ...]
    """Why the run is inadequate (empty: adequate)."""
    not_assessed: tuple[str, ...]
    """Criteria the run's records could not decide."""

    @property
    def inadequate(self) -> bool:
        return bool(self.reasons)

    @property
    def loss_fraction(self) -> float | None:
        if self.loss_last_quarter is None or not self.chance:
            return None
        return self.loss_last_quarter / self.chance

    @property
    def state(self) -> str:
        if self.reasons:
            return "inadequate: " + "; ".join(self.reasons)
        unassessed = f" ({', '.join(self.not_assessed)} not assessable)" if self.not_assessed else ""
        return "adequate" + unassessed

    def to_json(self) -> dict[str, object]:
        return {"candidates": self.candidates, "chance": self.chance, "loss_last_quarter": self.loss_last_quarter,
                "loss_fraction_of_chance": self.loss_fraction, "loss_vs_reference": self.loss_vs_reference,
                "gain": self.gain, "reference_gain": self.reference_gain,
                "half": None if self.half is None else list(self.half),
                "final": None if self.final is None else list(self.final), "late_rise": self.late_rise,
                "inadequate": self.inadequate, "reasons": list(self.reasons), "not_assessed": list(self.not_assessed)}


def _gain(run: Run) -> float | None:
    train = run.train
    if train is None or train.recall_before is None or train.recall_after is None:
        return None
    return train.recall_after - train.recall_before


def adequacy(run: Run, settings: Settings | None, reference: Run | None = None) -> Adequacy | None:
    """The rule applied to one trained run (None for an untrained one); `reference` is the reference design's run
    trained with the same seed, if any."""
    train = run.train
    if not run.trained or train is None:
        return None
    losses = train.losses
    last = max((step for step, _ in losses), default=None)
    candidates = candidates_per_softmax(run, settings)
    chance = math.log(candidates) if candidates and candidates > 1 else None
    loss_mean = _window_mean(losses, last) if last else None
    reasons, not_assessed = [], []
    if loss_mean is None or chance is None:
        not_assessed.append(LOSS)
    elif not loss_mean < CHANCE_FRACTION * chance:
        reasons.append(f"last-quarter loss {loss_mean:.2f} is {loss_mean / chance:.0%} of chance "
                       f"ln {candidates} = {chance:.2f}")
    gain = _gain(run)
    is_reference = reference is None or reference.key == run.key
    reference_gain = None if reference is None else _gain(reference)
    if gain is None:
        not_assessed.append(GAIN)
    elif gain < MIN_GAIN:
        reasons.append(f"held-out recall@1 gain {gain:+.3f} < {MIN_GAIN:.2f}")
    elif not is_reference and reference_gain is not None and reference_gain > 0 and gain < FAR_BELOW * reference_gain:
        reasons.append(f"held-out recall@1 gain {gain:+.3f} < {FAR_BELOW:.0%} of the reference's {reference_gain:+.3f}")
    vs_reference = None
    if not is_reference and reference.train is not None and reference.seed == run.seed and last:
        theirs = dict(reference.train.losses)
        shared = [loss - theirs[step] for step, loss in losses if step > last * (1 - WINDOW) and step in theirs]
        vs_reference = float(np.mean(shared)) if shared else None
    curve = train.holdout_curve
    steps = train.steps or (curve[-1][0] if curve else None)
    half = final = late_rise = None
    if len(curve) >= 2 and steps:
        final_point = curve[-1]
        final = (final_point[0], final_point[1])
        half_point = _at_or_before(curve, steps / 2)
        half = (half_point[0], half_point[1]) if half_point and half_point[0] > 0 else None
        start = _at_or_before(curve, steps * (1 - WINDOW))
        late_rise = final_point[1] - start[1] if start and start[0] < final_point[0] else None
    if late_rise is None:
        not_assessed.append(RISING)
    elif late_rise > RISE:
        reasons.append(f"held-out recall@1 still rose {late_rise:+.3f} over the last quarter")
    return Adequacy(candidates, chance, loss_mean, vs_reference, gain, reference_gain, half, final, late_rise,
                    tuple(reasons), tuple(not_assessed))


def loss_rule_detection(residuals: Sequence[float], true_fraction: float, *, points: int = 10, trials: int = 20_000,
                        seed: int = 0) -> float:
    """How often the loss criterion calls a run inadequate when its true last-quarter mean loss is `true_fraction`
    of chance: `points` logged losses, each the true mean plus a residual drawn (with replacement) from `residuals`,
    observed batch-to-batch deviations in units of chance (a loss minus its run's last-quarter mean, over ln N).

    Above CHANCE_FRACTION this is the rule's power, below it its false-alarm rate.
    """
    rng = np.random.default_rng(seed)
    noise = rng.choice(np.asarray(residuals, dtype=float), size=(trials, points), replace=True)
    means = true_fraction + noise.mean(axis=1)
    return float(np.mean(~(means < CHANCE_FRACTION)))


def loss_residuals(runs: Sequence[Run], settings: Settings | None) -> list[float]:
    """Every trained run's last-quarter losses minus that run's last-quarter mean, over its chance level."""
    out: list[float] = []
    for run in runs:
        if not run.trained or run.train is None:
            continue
        losses = run.train.losses
        candidates = candidates_per_softmax(run, settings)
        if not losses or not candidates:
            continue
        last = max(step for step, _ in losses)
        window = [loss for step, loss in losses if step > last * (1 - WINDOW)]
        if len(window) < 2:
            continue
        inflate = math.sqrt(len(window) / (len(window) - 1))  # centring on the window's own mean shrinks the spread
        out += [inflate * (loss - float(np.mean(window))) / math.log(candidates) for loss in window]
    return out


def curve_rule_detection(true_rise: float, level: float, n_items: int, *, trials: int = 20_000,
                         seed: int = 0) -> float:
    """How often the curve criterion calls a run still rising when its true held-out recall@1 goes from
    `level - true_rise` to `level` over the last quarter, each check an independent binomial draw of `n_items`
    queries: the noisiest case, since the real checks score the same queries every time."""
    rng = np.random.default_rng(seed)
    before = rng.binomial(n_items, level - true_rise, trials) / n_items
    after = rng.binomial(n_items, level, trials) / n_items
    return float(np.mean(after - before > RISE))
