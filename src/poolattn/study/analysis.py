"""The study's verdict as typed objects: per-design comparisons with intervals, seeds, adequacy, the paper.

`analyse(results, items_dir)` gathers everything the report states: the score tables (stats.py); for each design (all
its seeds together) against the reference design, per category and per task, a paired bootstrap interval over the
items (bootstrap.py) with Holm-adjusted p over all (design x category) comparisons; the mean and spread of each
category mean across seeds; the adequacy rule per run (adequacy.py); and the verdict on each of the paper's
claims (paper.py), none where a run on either side is inadequate. The Markdown and HTML reports only render this
object, and `results.json` carries its `comparisons`.

Runs of one design trained with different seeds share a `group` in results.json (the design's key); a study without
`study.seeds` has one run per group, keyed like the group.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from poolattn.evaluation.items import ITEMS_DIR, TaskItems, load_run_items, suite_pair_texts
from poolattn.study.bootstrap import BOOTSTRAP_SEED, N_BOOTSTRAP, Comparison, PairedBootstrap, with_holm
from poolattn.study.adequacy import Adequacy, adequacy
from poolattn.study.paper import CLAIMED_DESIGNS, PAPER_DELTAS, REFERENCE_DESIGN, PaperClaim
from poolattn.study.results import Run, StudyResults
from poolattn.study.stats import StudyStats, compare

logger = logging.getLogger(__name__)

ALPHA = 0.05
"""Significance level of the Holm-adjusted p, as in the paper."""

AGREE, DISAGREE, INCONCLUSIVE, NO_VERDICT = "agree", "disagree", "inconclusive", "no verdict: inadequate"


@dataclass(frozen=True)
class Group:
    """One design with all its seeds: which runs, and each category's mean and spread across them."""

    key: str
    label: str
    number: int | None
    trained: bool
    runs: tuple[str, ...]
    seeds: tuple[int | None, ...]
    category_means: dict[str, tuple[float | None, float | None]]
    """category -> (mean over seeds of the category mean, its standard deviation across seeds; None for 1 seed)."""
    inadequate_runs: tuple[str, ...] = ()
    holdout_final: float | None = None
    """Mean over seeds of the held-out recall@1 at the curve's last point (None: a run has no curve)."""
    holdout_half: float | None = None
    """The same at half the training steps."""

    @property
    def inadequate(self) -> bool:
        return bool(self.inadequate_runs)


@dataclass(frozen=True)
class Verdict:
    """One of the paper's claims (design N vs design 1 on a category) against this study's interval."""

    claim: PaperClaim
    group: str
    number: int
    comparison: Comparison | None
    verdict: str
    reason: str

    @property
    def category(self) -> str:
        return self.claim.category

    @property
    def paper_significant(self) -> bool:
        """Whether the paper found this design's difference on this category significant."""
        return self.number in self.claim.significant_for

    @property
    def paper_sign(self) -> int:
        """The sign of the paper's delta for this design: its category range lies on one side of 0, so every design
        in it has the range's sign."""
        return self.claim.sign


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything the report states, as numbers: the score tables, the intervals, seeds, adequacy, verdicts."""

    table: StudyStats
    """Per-run category means and deltas against the reference design's first run."""
    reference: str | None
    groups: dict[str, Group]
    adequacy: dict[str, Adequacy | None]
    comparisons: dict[str, dict[str, Comparison | None]]
    """design -> category -> comparison with the reference (Holm-adjusted across this whole table)."""
    task_comparisons: dict[str, dict[str, Comparison | None]]
    verdicts: list[Verdict]
    n_boot: int
    bootstrap_seed: int
    missing_items: dict[str, list[str]] = field(default_factory=dict)
    """run -> tasks scored without an items file (left out of the intervals)."""
    schemes: dict[str, str] = field(default_factory=dict)
    """task -> how its items were resampled (bootstrap.item_scheme)."""
    probe_draws: dict[str, int] = field(default_factory=dict)
    """classification task -> the fewest draws of the probe's training sample any run recorded."""

    def inadequate(self, run: str) -> bool:
        return (found := self.adequacy.get(run)) is not None and found.inadequate

    def holds_at_half_budget(self, group: str) -> bool | None:
        """Does the held-out recall@1 ordering of `group` vs the reference at the end of training hold at half the
        steps too? None without a curve on both sides."""
        g, ref = self.groups[group], self.groups.get(self.reference) if self.reference else None
        values = (g.holdout_final, g.holdout_half, *((ref.holdout_final, ref.holdout_half) if ref else (None,)))
        if ref is None or any(v is None for v in values):
            return None
        return bool(np.sign(g.holdout_final - ref.holdout_final) == np.sign(g.holdout_half - ref.holdout_half))

    def results_fields(self) -> dict[str, object]:
        """What results.json gains: the reference, every comparison, and per design the held-out budget check."""
        return {"reference": self.reference,
                "comparisons": {g: {c: (cell.to_json() if cell else None) for c, cell in cells.items()}
                                for g, cells in self.comparisons.items()},
                "holdout_budget": {g: {"inadequate_runs": list(self.groups[g].inadequate_runs),
                                       "holdout_recall_final": self.groups[g].holdout_final,
                                       "holdout_recall_half": self.groups[g].holdout_half,
                                       "holds_at_half_budget": self.holds_at_half_budget(g)}
                                   for g in self.comparisons}}

    def to_json(self) -> dict[str, object]:
        return {
            **self.results_fields(),
            "task_comparisons": {g: {t: (cell.to_json() if cell else None) for t, cell in cells.items()}
                                 for g, cells in self.task_comparisons.items()},
            "groups": {k: {"label": g.label, "runs": list(g.runs), "seeds": list(g.seeds),
                           "category_means": {c: list(v) for c, v in g.category_means.items()},
                           "inadequate_runs": list(g.inadequate_runs)} for k, g in self.groups.items()},
            "adequacy": {k: (a.to_json() if a else None) for k, a in self.adequacy.items()},
            "verdicts": [{"category": v.category, "design": v.group, "number": v.number, "verdict": v.verdict,
                          "reason": v.reason, "paper_low": v.claim.low, "paper_high": v.claim.high,
                          "paper_sign": v.paper_sign, "paper_significant": v.paper_significant,
                          "holds_at_half_budget": self.holds_at_half_budget(v.group)} for v in self.verdicts],
            "bootstrap": {"replicates": self.n_boot, "seed": self.bootstrap_seed, "schemes": self.schemes,
                          "probe_draws": self.probe_draws},
            "missing_items": self.missing_items,
        }


# ------------------------------------------------------------------------------------------------ pieces


def _mean(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def _groups(results: StudyResults, table: StudyStats, judged: dict[str, Adequacy | None]) -> dict[str, Group]:
    members: dict[str, list[str]] = {}
    for key in results.run_order():
        members.setdefault(results.runs[key].group, []).append(key)
    out = {}
    for group, keys in members.items():
        first = results.runs[keys[0]]
        means = {}
        for category, cat in table.categories.items():
            values = [m for m in (cat.runs[k].mean for k in keys) if m is not None]
            means[category] = (float(np.mean(values)) if values else None,
                               float(np.std(values, ddof=1)) if len(values) > 1 else None)
        out[group] = Group(group, first.group_label, first.number, first.trained, tuple(keys),
                           tuple(results.runs[k].seed for k in keys), means,
                           tuple(k for k in keys if judged.get(k) is not None and judged[k].inadequate),
                           _mean([judged[k].final[1] if judged.get(k) and judged[k].final else None for k in keys]),
                           _mean([judged[k].half[1] if judged.get(k) and judged[k].half else None for k in keys]))
    return out


def significant(comparison: Comparison | None) -> bool:
    """Holm-adjusted p below ALPHA: the one rule by which a difference counts, in the verdicts and the bold cells."""
    return comparison is not None and comparison.p_holm is not None and comparison.p_holm < ALPHA


def _verdict(claim: PaperClaim, group: Group, reference: Group, comparison: Comparison | None,
             judged: dict[str, Adequacy | None], labels: dict[str, str]) -> Verdict:
    inadequate = [f"{labels[k]} is inadequate: {'; '.join(judged[k].reasons)}"
                  for g in (group, reference) for k in g.inadequate_runs]
    if inadequate:
        verdict, reason = NO_VERDICT, " | ".join(inadequate) + " (see Adequacy)"
    elif comparison is None:
        verdict, reason = INCONCLUSIVE, "no item evidence to build an interval"
    elif not significant(comparison):
        verdict, reason = INCONCLUSIVE, (f"Holm p ≥ {ALPHA}" + (" (the unadjusted 95% interval excludes 0)"
                                                                if comparison.excludes_zero else ""))
    elif claim.on_its_side(comparison.delta):
        verdict, reason = AGREE, f"Holm p < {ALPHA}, on the paper's side"
    else:
        verdict, reason = DISAGREE, f"Holm p < {ALPHA}, on the other side"
    return Verdict(claim, group.key, int(group.number), comparison, verdict, reason)


def _with_texts(task: str, items: TaskItems, texts: dict[str, list[tuple[str, str]] | None]) -> TaskItems:
    """STS items without recorded texts get them from the bundled suite, where the task is one of its own."""
    if items.category != "sts" or items.texts is not None:
        return items
    if task not in texts:
        texts[task] = suite_pair_texts(task)
    return items if texts[task] is None else items.with_texts(texts[task])


# ------------------------------------------------------------------------------------------------ analyse


def _reference_run(results: StudyResults, reference: str, run: Run) -> Run | None:
    """The reference design's run trained with `run`'s seed (the same batches), else its first run."""
    candidates = [r for k, r in results.runs.items() if r.trained and (k == reference or r.group == reference)]
    return next((r for r in candidates if r.seed == run.seed), candidates[0] if candidates else None)


def replicates_for(comparisons: int) -> int:
    """Bootstrap replicates for a study of `comparisons` Holm-adjusted comparisons: at least N_BOOTSTRAP, and enough
    that the smallest Holm p (comparisons x the smallest bootstrap p, 2 / (B + 1)) is at most ALPHA / 2, so a clear
    difference is not hidden by the finite number of replicates."""
    return max(N_BOOTSTRAP, math.ceil(4 * comparisons / ALPHA))


def analyse(results: StudyResults, items_dir: str | Path | None = None, *, reference: str = "1",
            n_boot: int | None = None, seed: int = BOOTSTRAP_SEED) -> StudyAnalysis:
    """Everything the report concludes, from the results and the items files under `items_dir/<run>/`.

    `items_dir` defaults to the `items` folder beside the results.json the results were read from; runs or tasks
    without items files get no interval (their comparisons are None) and are listed in `missing_items`. `n_boot`
    defaults to `replicates_for(m)` for the study's m design x category comparisons. `reference` names a design
    (a group); the score tables compare with its first run.
    """
    if items_dir is None and results.source is not None:
        items_dir = results.source.parent / ITEMS_DIR
    runs = results.runs
    reference_run = reference if reference in runs else next(
        (k for k in results.run_order() if runs[k].group == reference), reference)
    table = compare(results, reference_run)
    categories = results.tasks_by_category()
    judged = {key: adequacy(run, results.settings, _reference_run(results, reference, run))
              for key, run in runs.items()}
    groups = _groups(results, table, judged)
    loaded = {key: (load_run_items(Path(items_dir) / key) if items_dir is not None else {}) for key in runs}
    texts: dict[str, list[tuple[str, str]] | None] = {}
    loaded = {key: {t: _with_texts(t, items, texts) for t, items in found.items()} for key, found in loaded.items()}
    missing = {key: sorted(t for t, v in run.scores.items() if v is not None and t not in loaded[key])
               for key, run in runs.items()}
    missing = {k: v for k, v in missing.items() if v}
    ref = reference if reference in groups else None
    if ref is None:
        logger.warning("reference design %r is not in the results; no comparisons", reference)
    compared = [g for g, group in groups.items() if ref is not None and g != ref and group.trained]
    n_boot = n_boot or replicates_for(len(compared) * len(categories))
    boot = PairedBootstrap({g: [loaded[k] for k in group.runs] for g, group in groups.items()},
                           n_boot=n_boot, seed=seed)
    by_category = {g: {c: boot.compare(g, ref, tasks) for c, tasks in categories.items()} for g in compared}
    by_task = {g: {t: boot.compare(g, ref, [t]) for tasks in categories.values() for t in tasks} for g in compared}
    by_category = with_holm(by_category)
    verdicts = []
    if ref is not None and groups[ref].number == REFERENCE_DESIGN:
        for category, claim in PAPER_DELTAS.items():
            if category not in categories:
                continue
            claimed = (g for g in compared if groups[g].number in CLAIMED_DESIGNS)
            for g in sorted(claimed, key=lambda g: groups[g].number):
                verdicts.append(_verdict(claim, groups[g], groups[ref], by_category[g][category], judged,
                                         {k: r.label for k, r in runs.items()}))
    schemes = {t: scheme for t in (t for tasks in categories.values() for t in tasks)
               if (scheme := boot.scheme(t)) is not None}
    draws = {}
    for found in loaded.values():
        for t, items in found.items():
            if items.category == "classification":
                draws[t] = min(draws.get(t, items.n_draws), items.n_draws)
    return StudyAnalysis(table, ref, groups, judged, by_category, by_task, verdicts, n_boot, seed, missing, schemes,
                         dict(sorted(draws.items())))


