"""Paired, hierarchical bootstrap of the study's differences, and Holm's adjustment across comparisons.

A run's main score on a task is a function of its items (queries, pairs, examples: evaluation/items.py), and every
run is scored on the same items, so a difference between two runs can be judged against the spread of that
difference over resamples of the items: the paired bootstrap (Efron & Tibshirani, 1993, ch. 16). Each replicate

1. resamples every task's items, once, and scores every run on those same items (the metric itself is recomputed
   on the resample, so Spearman, accuracy, AP and V-measure are handled like means). How a task's items are
   resampled depends on how they depend on each other (`ITEM_SCHEMES`):
   - independent items (queries, examples, sentence pairs that share no text): drawn with replacement;
   - STS pairs that share a text (SimLex-999 and WordSim-353 reuse words: "money" is in 13 pairs) are not
     independent: every pair with "money" moves with how well the model places "money". The pairs are joined into
     connected components (two pairs are joined when they share a text, directly or through other pairs) and the
     components are drawn with replacement, each bringing all its pairs (a cluster bootstrap, Davison & Hinkley
     1997, sec. 3.8). It reduces to the pair bootstrap when no text is shared. With fewer than MIN_COMPONENTS
     components (a few large ones hold the pairs) that is too few draws to judge by, and the texts are drawn
     instead (below), the conservative choice. Drawing the texts instead and keeping
     each pair as often as the product of its two texts' draws (the vertex or "pigeonhole" bootstrap, Owen 2007)
     is biased upward here: a pair whose texts occur nowhere else enters with the variance of a product of two
     draws, 3 times a single draw's, so on these sparse word graphs it is about sqrt(3) = 1.7x too wide even with no
     shared-word effect at all; a simulation on the suite's own pair graphs (planted word and pair effects, 40
     datasets each) gave component / true standard deviation 0.94-1.06 and vertex / true 1.37-1.75;
   - clustering documents: resampling with replacement repeats documents, and a repeated document agrees with
     itself, which inflates the V-measure of both clusterings by different amounts (the raw replicates sit off the
     observed delta by more than the interval's width on the suite's tasks). Half the documents are drawn without
     replacement instead (m-out-of-n subsampling, m = n - d = n // 2: the delete-d jackknife of Shao & Wu 1989,
     consistent for non-smooth statistics when d is a fixed share of n) and each replicate's deviation from the
     replicates' mean is scaled by sqrt(m / d), the factor that gives a mean's subsample exactly the variance of the
     full-sample mean under sampling without replacement (Politis & Romano's sqrt(m / n) is its limit for m << n);
2. for classification tasks scored under several draws of the probe's training sample (mteb's experiments, every
   draw scoring every item), draws that many of them with replacement, the same for every run (draw e is the same
   training sample for every run), and averages the drawn ones: items and draws are crossed, and this is the
   two-way (pigeonhole) bootstrap of a crossed design, mildly conservative (Owen 2007). With one recorded draw the
   interval carries no variance of the probe's training sample;
3. draws, for each design independently, as many of its seeds as it has, with replacement, and takes the mean over
   the drawn seeds (a hierarchical bootstrap: seeds, then items; with one seed this step does nothing, and the
   interval then says nothing about seed-to-seed variation);
4. takes the design's score minus the reference's, per task, and the mean of those over a category's tasks (as
   the category mean is the mean of its tasks).

The interval is the 2.5th to 97.5th percentile of the replicates; the two-sided p is twice the smaller tail share of
them at or beyond zero, each tail counted as (k + 1) / (B + 1), so it never reads 0 from finitely many draws: a p
at that floor, 2 / (B + 1), says only that no replicate crossed zero, and is reported as an upper bound. Every
random draw comes from a generator seeded by `seed` and the task's or design's name, so the numbers are
reproducible and do not shift when another task or design joins the study.
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
        """Whether the unadjusted 95% interval excludes 0 (the verdicts go by `p_holm`: analysis.significant)."""
        return self.ci95[0] > 0 or self.ci95[1] < 0

    @property
    def p_floor(self) -> float:
        """The smallest p the replicates can give: 2 / (B + 1)."""
        return p_floor(self.n_replicates)

    @property
    def p_at_floor(self) -> bool:
        """No replicate crossed zero: p (and the Holm p made from it) is an upper bound, not a measurement."""
        return self.p <= self.p_floor * (1 + 1e-9)

    def to_json(self) -> dict[str, object]:
        return {"delta": self.delta, "ci95": list(self.ci95), "p": self.p, "p_holm": self.p_holm,
                "p_at_floor": self.p_at_floor,
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


def p_floor(n_replicates: int) -> float:
    """The smallest two-sided bootstrap p from `n_replicates` replicates (no replicate on the other side of 0)."""
    return min(1.0, 2 / (n_replicates + 1))


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


def pair_components(texts: np.ndarray) -> np.ndarray:
    """Connected component of each pair, (n, 2) text codes -> (n,): pairs sharing a text, directly or through other
    pairs, share a component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_texts = int(texts.max()) + 1
    graph = coo_matrix((np.ones(len(texts)), (texts[:, 0], texts[:, 1])), shape=(n_texts, n_texts))
    _, label = connected_components(graph, directed=False)
    return np.unique(label[texts[:, 0]], return_inverse=True)[1]


ITEMS, COMPONENTS, TEXTS, HALF_SAMPLES = ("items with replacement", "shared-text components", "texts (pigeonhole)",
                                         "half-samples (delete-d)")
"""How a task's items are resampled; see the module docstring."""

MIN_COMPONENTS = 30
"""Fewest shared-text components a component bootstrap rests on; below it the texts are drawn (conservative)."""


def item_scheme(items: TaskItems) -> str:
    if items.category == "clustering":
        return HALF_SAMPLES
    if items.category == "sts" and items.texts is not None:
        return COMPONENTS
    return ITEMS


@dataclass(frozen=True)
class _Resample:
    """One task's B resamples: item positions (B, n) or item weights (B, n), the draws (B, E) of a probe's training
    sample, and for half-samples the factor that scales a replicate's deviation (None: use replicates as drawn)."""

    idx: np.ndarray | None
    weights: np.ndarray | None
    draws: np.ndarray | None
    scale: float | None
    scheme: str

    def score(self, items: TaskItems) -> np.ndarray:
        return items.score(self.idx, weights=self.weights, draws=self.draws)


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
        self._resamples: dict[str, _Resample] = {}
        self._ids: dict[str, tuple[str, ...]] = {}
        self._scores: dict[tuple[str, str], tuple[float, np.ndarray] | None] = {}

    def _draw(self, task: str, items: TaskItems) -> _Resample:
        rng, b, n = _rng(self.seed, "items", task), self.n_boot, items.n
        scheme = item_scheme(items)
        draws = None
        if items.n_draws > 1:
            draws = _rng(self.seed, "draws", task).integers(0, items.n_draws, size=(b, items.n_draws))
        if scheme == COMPONENTS:
            component = pair_components(items.texts)
            k = int(component.max()) + 1
            if k < MIN_COMPONENTS:  # draw the texts: each pair enters as often as both its texts were drawn
                v = int(items.texts.max()) + 1
                counts = np.zeros((b, v))
                np.add.at(counts, (np.arange(b)[:, None], rng.integers(0, v, size=(b, v))), 1.0)
                return _Resample(None, counts[:, items.texts[:, 0]] * counts[:, items.texts[:, 1]], draws, None,
                                 TEXTS)
            counts = np.zeros((b, k))
            np.add.at(counts, (np.arange(b)[:, None], rng.integers(0, k, size=(b, k))), 1.0)
            return _Resample(None, counts[:, component], draws, None, COMPONENTS)
        if scheme == HALF_SAMPLES:
            m = n // 2
            if m < 1:
                raise ValueError(f"{task}: half-samples need at least 2 items, got {n}")
            keep = np.argsort(rng.random((b, n)), axis=1)[:, :m]
            weights = np.zeros((b, n))
            np.put_along_axis(weights, keep, 1.0, axis=1)
            return _Resample(None, weights, draws, float(np.sqrt(m / (n - m))), HALF_SAMPLES)
        return _Resample(rng.integers(0, n, size=(b, n)), None, draws, None, ITEMS)

    def _resample(self, task: str, items: TaskItems) -> tuple[tuple[str, ...], _Resample]:
        if task not in self._resamples:
            self._ids[task] = items.ids
            self._resamples[task] = self._draw(task, items)
        return self._ids[task], self._resamples[task]

    def scheme(self, task: str) -> str | None:
        """How `task`'s items were resampled (None: not yet drawn)."""
        drawn = self._resamples.get(task)
        return None if drawn is None else drawn.scheme

    def has(self, group: str, task: str) -> bool:
        """Whether every seed of `group` has items for `task`."""
        runs = self.groups.get(group) or []
        return bool(runs) and all(task in run for run in runs)

    def group_scores(self, group: str, task: str) -> tuple[float, np.ndarray]:
        """(mean over seeds of the score, (B,) replicates: seeds then items resampled) for a design on a task.

        Raises:
            ValueError: the runs of the task recorded different numbers of probe draws (they cannot be paired).
        """
        key = (group, task)
        if key not in self._scores:
            runs = self.groups[group]
            ids, resample = self._resample(task, runs[0][task])
            aligned = [run[task].aligned_to(ids) for run in runs]
            expected = 1 if resample.draws is None else resample.draws.shape[1]
            if any(items.n_draws != expected for items in aligned):
                raise ValueError(f"{task}: runs recorded {sorted({i.n_draws for i in aligned})} probe draws, the "
                                 f"first run {expected}; draws are paired across runs, so every run needs the same")
            points = np.array([items.score() for items in aligned])
            per_seed = np.stack([resample.score(items) for items in aligned], axis=1)  # (B, S)
            if resample.scale is not None:  # half-samples: the point plus the scaled deviation
                per_seed = points + resample.scale * (per_seed - np.nanmean(per_seed, axis=0))
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
