"""Paired, hierarchical bootstrap of the study's differences, and Holm's adjustment across comparisons.

A run's main score on a task is a function of its items (queries, pairs, examples: evaluation/items.py), and every
run is scored on the same items, so a difference between two runs can be judged against the spread of that
difference over resamples of the items: the paired bootstrap (Efron & Tibshirani, 1993, ch. 16). Each replicate

1. draws every task's items with replacement, once, and scores every run on those same items (the metric itself is
   recomputed on the resample, so Spearman, accuracy, AP and V-measure are handled like means);
2. draws, for each design independently, as many of its seeds as it has, with replacement, and takes the mean over
   the drawn seeds (a hierarchical bootstrap: seeds, then items; with one seed this step does nothing, and the
   interval then says nothing about seed-to-seed variation);
3. takes the design's score minus the reference's, per task, and the mean of those over a category's tasks (as
   the category mean is the mean of its tasks).

The replicates are then centred on the observed delta (each shifted by the delta minus their mean). For means this
changes nothing beyond resampling noise; for V-measure it matters: a resample repeats documents, which inflates the
mutual information of both runs' clusterings by different amounts, so the raw replicates sit off the observed
delta (by more than the interval's width, on the offline suite's clustering tasks). The interval is the 2.5th to
97.5th percentile of the centred replicates; the two-sided p is twice the smaller tail share of them at or beyond
zero, each tail counted as (k + 1) / (B + 1) so it never reads 0 from finitely many draws. Every random draw comes from a generator seeded by `seed` and the task's or design's name, so the numbers
are reproducible and do not shift when another task or design joins the study.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from poolattn.evaluation.items import TaskItems

N_BOOTSTRAP = 2000
"""Replicates: enough for a stable 95% percentile interval (Efron & Tibshirani recommend >= 1000)."""

BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
MAX_UNDEFINED = 0.05
"""Largest share of replicates whose metric may be undefined (NaN) before a comparison gives no interval."""


@dataclass(frozen=True)
class Comparison:
    """One design against the reference on one task or category: the delta, its interval and its p-values."""

    delta: float
    ci95: tuple[float, float]
    p: float
    n_items: int
    n_tasks: int
    n_seeds: int
    """Seeds of the design (the reference's are in `n_reference_seeds`)."""
    n_reference_seeds: int
    n_replicates: int = N_BOOTSTRAP
    """Replicates the interval rests on (those where the metric was defined)."""
    p_holm: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.ci95[0] > 0 or self.ci95[1] < 0

    def to_json(self) -> dict[str, object]:
        return {"delta": self.delta, "ci95": list(self.ci95), "p": self.p, "p_holm": self.p_holm,
                "n_items": self.n_items, "n_tasks": self.n_tasks, "n_seeds": self.n_seeds,
                "n_reference_seeds": self.n_reference_seeds, "n_replicates": self.n_replicates}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm, 1979), in the input order.

    The i-th smallest p (1-based) is multiplied by m - i + 1, capped at 1, and made non-decreasing in that order,
    which controls the family-wise error rate at alpha without assuming independence.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided p from bootstrap replicates of a difference: twice the smaller tail at or beyond zero."""
    b = len(replicates)
    below = (np.count_nonzero(replicates <= 0) + 1) / (b + 1)
    above = (np.count_nonzero(replicates >= 0) + 1) / (b + 1)
    return float(min(1.0, 2 * min(below, above)))


def _interval(replicates: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low), float(high)


class PairedBootstrap:
    """Replicates of every design's score on every task, on item resamples shared by all runs.

    Args:
        groups: design key -> one {task: TaskItems} per seed (the runs of that design).
        n_boot: replicates.
        seed: seeds every draw (with the task's and the design's name).
    """

    def __init__(self, groups: Mapping[str, Sequence[Mapping[str, TaskItems]]], *, n_boot: int = N_BOOTSTRAP,
                 seed: int = BOOTSTRAP_SEED) -> None:
        if n_boot < 1:
            raise ValueError(f"n_boot must be positive, got {n_boot}")
        self.groups = {key: list(runs) for key, runs in groups.items()}
        self.n_boot = n_boot
        self.seed = seed
        self._indices: dict[str, np.ndarray] = {}
        self._ids: dict[str, tuple[str, ...]] = {}
        self._scores: dict[tuple[str, str], tuple[float, np.ndarray] | None] = {}

    def _resample(self, task: str, items: TaskItems) -> tuple[tuple[str, ...], np.ndarray]:
        if task not in self._indices:
            self._ids[task] = items.ids
            self._indices[task] = _rng(self.seed, "items", task).integers(0, items.n, size=(self.n_boot, items.n))
        return self._ids[task], self._indices[task]

    def has(self, group: str, task: str) -> bool:
        """Whether every seed of `group` has items for `task`."""
        runs = self.groups.get(group) or []
        return bool(runs) and all(task in run for run in runs)

    def group_scores(self, group: str, task: str) -> tuple[float, np.ndarray]:
        """(mean over seeds of the score, (B,) replicates: seeds then items resampled) for a design on a task."""
        key = (group, task)
        if key not in self._scores:
            runs = self.groups[group]
            ids, idx = self._resample(task, runs[0][task])
            aligned = [run[task].aligned_to(ids) for run in runs]
            points = np.array([items.score() for items in aligned])
            per_seed = np.stack([items.score(idx) for items in aligned], axis=1)  # (B, S)
            draws = _rng(self.seed, "seeds", group).integers(0, len(runs), size=(self.n_boot, len(runs)))
            replicates = np.take_along_axis(per_seed, draws, axis=1).mean(axis=1)
            self._scores[key] = (float(points.mean()), replicates)
        return self._scores[key]

    def compare(self, group: str, reference: str, tasks: Sequence[str]) -> Comparison | None:
        """`group` minus `reference` averaged over `tasks` (those both have items for), or None if there is none."""
        usable = [t for t in tasks if self.has(group, t) and self.has(reference, t)]
        if not usable:
            return None
        deltas, replicates = [], []
        for task in usable:
            ref_point, ref_reps = self.group_scores(reference, task)
            point, reps = self.group_scores(group, task)
            deltas.append(point - ref_point)
            replicates.append(reps - ref_reps)
        delta = float(np.mean(deltas))
        reps = np.mean(replicates, axis=0)
        finite = reps[np.isfinite(reps)]
        # A resample can leave a metric undefined (all predictions equal: no correlation); a few such replicates
        # are dropped, more than MAX_UNDEFINED make the interval meaningless.
        if not np.isfinite(delta) or len(finite) < (1 - MAX_UNDEFINED) * len(reps):
            return None
        finite = finite + (delta - finite.mean())  # centred on the observed delta: see the module docstring
        return Comparison(delta=delta, ci95=_interval(finite), p=bootstrap_p(finite),
                          n_items=sum(self.groups[reference][0][t].n for t in usable), n_tasks=len(usable),
                          n_seeds=len(self.groups[group]), n_reference_seeds=len(self.groups[reference]),
                          n_replicates=len(finite))


def with_holm(comparisons: Mapping[str, Mapping[str, Comparison | None]]) -> dict[str, dict[str, Comparison | None]]:
    """The same comparisons with `p_holm` set, adjusting over every (design, category) comparison given."""
    from dataclasses import replace

    keys = [(g, c) for g, cells in comparisons.items() for c, cell in cells.items() if cell is not None]
    adjusted = holm([comparisons[g][c].p for g, c in keys])
    out = {g: dict(cells) for g, cells in comparisons.items()}
    for (g, c), p_holm in zip(keys, adjusted):
        out[g][c] = replace(comparisons[g][c], p_holm=p_holm)
    return out
