"""The study's score tables: per-category means of every run and their deltas against a reference run.

The paper (Tang & Yang, 2024) compares each design with design 1 (EOS pooling, causal attention) per task category
by the delta of the category mean. This module computes those means and deltas from a `StudyResults`, with no
plotting or formatting; their uncertainty comes from the item-level bootstrap (analysis.py). A task can fail for one
run (score None), so every delta pairs only the tasks scored by both runs and says which it left out.

It also keeps, for now, the paper's dataset-level Wilcoxon signed-rank test. A small study has few datasets per
category, and the two-sided exact test on n datasets cannot give p < 0.05 when n < 6 (the most extreme outcome has
probability 2 / 2^n), so such cells get an explanation instead of a result that only looks like one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from poolattn.study.fmt import plural
from poolattn.study.paper import CLAIMED_DESIGNS, PAPER_DELTAS, REFERENCE_DESIGN, PaperClaim
from poolattn.study.results import Run, StudyResults

logger = logging.getLogger(__name__)

ALPHA = 0.05
"""Significance level, as in the paper."""

MIN_TESTABLE = 6
"""Fewest non-zero paired differences for which the two-sided exact test can reach p < ALPHA (2 / 2^6 = 0.031)."""

CATEGORY_TITLES = {
    "retrieval": "Retrieval",
    "reranking": "Reranking",
    "clustering": "Clustering",
    "pair_classification": "Pair classification",
    "classification": "Classification",
    "sts": "STS",
    "summarization": "Summarization",
}

_DIFF_DECIMALS = 10
"""Differences are rounded here so float noise (0.81 - 0.80 vs 0.72 - 0.71) does not break real ties."""


def category_title(category: str) -> str:
    return CATEGORY_TITLES.get(category, category.replace("_", " ").capitalize())


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def category_mean(run: Run, tasks: list[str]) -> float | None:
    """The run's mean main score over the tasks it scored: a category mean, or the overall mean over every task."""
    return _mean([s for s in (run.score(t) for t in tasks) if s is not None])


def _pair(run: Run, ref: Run, tasks: list[str]) -> tuple[list[float], list[float], list[str]]:
    """Scores of `run` and `ref` on the tasks both scored, and the tasks left out."""
    xs, ys, left_out = [], [], []
    for task in tasks:
        a, b = run.score(task), ref.score(task)
        if a is None or b is None:
            left_out.append(task)
        else:
            xs.append(a)
            ys.append(b)
    return xs, ys, left_out


@dataclass(frozen=True)
class WilcoxonTest:
    """A two-sided Wilcoxon signed-rank test over paired datasets, or the reason it says nothing (`note`)."""

    n: int
    n_nonzero: int
    statistic: float | None = None
    p: float | None = None
    method: str | None = None
    testable: bool = False
    note: str | None = None


def wilcoxon_test(x: list[float], y: list[float]) -> WilcoxonTest:
    """Two-sided Wilcoxon signed-rank test of paired scores x vs y, with a note where it cannot say anything.

    Zero differences are dropped first (Wilcoxon's convention, scipy's default `zero_method="wilcox"`); the test
    is exact when no differences tie and, with ties, scipy's exhaustive permutation (n <= 13) or normal
    approximation. `p` is reported even below MIN_TESTABLE, but `testable` is then false and `note` says why.
    """
    from scipy.stats import wilcoxon

    diffs = np.round(np.asarray(x, dtype=float) - np.asarray(y, dtype=float), _DIFF_DECIMALS)
    nonzero = diffs[diffs != 0]
    n, k = len(diffs), len(nonzero)
    if n == 0:
        return WilcoxonTest(n, k, note="no dataset scored for both runs: nothing to test")
    if k == 0:
        return WilcoxonTest(n, k, note=f"all {plural(n, 'difference')} are zero: nothing to test")
    ties = len(np.unique(np.abs(nonzero))) < k
    result = wilcoxon(nonzero, method="auto" if ties else "exact")
    method = "exact" if not ties else ("permutation" if k <= 13 else "asymptotic")
    if k < MIN_TESTABLE:
        dropped = f" with a non-zero difference ({n - k} tied at zero, dropped)" if k < n else ""
        note = f"{plural(k, 'dataset')}{dropped}: too few for a Wilcoxon test (p can not fall below {2 / 2 ** k:.3g})"
        return WilcoxonTest(n, k, float(result.statistic), float(result.pvalue), method, False, note)
    note = f"{plural(n - k, 'zero difference')} dropped" if k < n else None
    return WilcoxonTest(n, k, float(result.statistic), float(result.pvalue), method, True, note)


@dataclass(frozen=True)
class CategoryCell:
    """One run in one category: mean over the tasks it scored, and delta and test against the reference.

    `test` is None for the reference itself and when there is no reference (`note` then says which).
    """

    mean: float | None
    n_scored: int
    missing: list[str]
    delta: float | None = None
    excluded: list[str] = field(default_factory=list)
    test: WilcoxonTest | None = None
    reason: str | None = None

    @property
    def p(self) -> float | None:
        return self.test.p if self.test else None

    @property
    def testable(self) -> bool:
        return bool(self.test and self.test.testable)

    @property
    def significant(self) -> bool:
        return bool(self.testable and self.p is not None and self.p < ALPHA)

    @property
    def note(self) -> str | None:
        return self.test.note if self.test else self.reason

    def to_json(self) -> dict[str, object]:
        test = asdict(self.test) if self.test else dict.fromkeys(("n", "n_nonzero", "statistic", "p", "method"))
        return {"mean": self.mean, "n_scored": self.n_scored, "missing": self.missing, "delta": self.delta,
                "excluded": self.excluded, **{k: test[k] for k in ("n", "n_nonzero", "statistic", "p", "method")},
                "testable": self.testable, "significant": self.significant, "note": self.note}


@dataclass(frozen=True)
class CategoryStats:
    title: str
    tasks: list[str]
    runs: dict[str, CategoryCell]


@dataclass(frozen=True)
class OverallCell:
    """One run over every task of the study (no test: the categories hold those)."""

    mean: float | None
    n_scored: int
    missing: list[str]
    delta: float | None
    excluded: list[str]
    n_tasks: int


@dataclass(frozen=True)
class StudyStats:
    """The numbers of the report's score tables: per-category means, deltas and Wilcoxon tests for every run."""

    reference: str | None
    name: str | None
    backbone: str | None
    run_order: list[str]
    runs: Mapping[str, Run]
    categories: dict[str, CategoryStats]
    overall: dict[str, OverallCell]
    warnings: list[str]
    alpha: float = ALPHA
    min_testable: int = MIN_TESTABLE
    test: str = "Wilcoxon signed-rank, two-sided, zero differences dropped, paired on per-task main scores"

    def to_json(self) -> dict[str, object]:
        runs = {k: {"label": r.label, "design": r.design, "number": r.number, "trained": r.trained,
                    "pooling": r.pooling, "attention": r.attention} for k, r in self.runs.items()}
        return {
            "reference": self.reference, "alpha": self.alpha, "min_testable": self.min_testable, "test": self.test,
            "study": {"name": self.name, "backbone": self.backbone}, "run_order": self.run_order,
            "runs": runs,
            "categories": {c: {"title": cat.title, "tasks": cat.tasks,
                               "runs": {k: cell.to_json() for k, cell in cat.runs.items()}}
                           for c, cat in self.categories.items()},
            "overall": {k: asdict(cell) for k, cell in self.overall.items()},
            "warnings": self.warnings,
        }


def _cell(run: Run, ref: Run | None, tasks: list[str], is_ref: bool) -> CategoryCell:
    """One run in one category (or overall): mean, and delta and test against the reference."""
    missing = [t for t in tasks if run.score(t) is None]
    mean = category_mean(run, tasks)
    if ref is None or is_ref:
        return CategoryCell(mean, len(tasks) - len(missing), missing,
                            reason="reference" if is_ref else "no reference run")
    xs, ys, left_out = _pair(run, ref, tasks)
    # Delta of the means over the tasks both runs scored, so a failed task never shifts one side only.
    return CategoryCell(mean, len(tasks) - len(missing), missing, _mean([a - b for a, b in zip(xs, ys)]), left_out,
                        wilcoxon_test(xs, ys))


def compare(results: StudyResults, reference: str = "1") -> StudyStats:
    """Per-category means, deltas vs the run `reference` and Wilcoxon tests for every run: the score tables.

    Each category holds, per run, a `CategoryCell`: `mean` (over the tasks the run scored), `delta` (mean over the
    tasks both runs scored of run - reference), the Wilcoxon `test` and `excluded` (tasks left out of the pair).
    `overall` does the same over all tasks, without a test. A missing reference run is not an error (a partial
    study can still be summarized): deltas are then None. `to_json()` is what stats.json holds.
    """
    runs = results.runs
    order = results.run_order()
    categories = results.tasks_by_category()
    warnings: list[str] = []
    ref = runs.get(reference)
    if ref is None:
        warnings.append(f"reference run {reference!r} is not in the results (runs: {order}); no deltas or tests")
        logger.warning(warnings[-1])
    by_category = {
        category: CategoryStats(category_title(category), tasks,
                                {key: _cell(runs[key], ref, tasks, key == reference) for key in order})
        for category, tasks in categories.items()
    }
    every_task = [t for tasks in categories.values() for t in tasks]
    overall = {}
    for key in order:
        cell = _cell(runs[key], ref, every_task, key == reference)
        overall[key] = OverallCell(cell.mean, cell.n_scored, cell.missing, cell.delta, cell.excluded, len(every_task))
    return StudyStats(reference=reference if ref is not None else None, name=results.name,
                      backbone=results.backbone, run_order=order, runs={key: runs[key] for key in order},
                      categories=by_category, overall=overall, warnings=warnings)


# ------------------------------------------------------------------------------------- paper comparison


@dataclass(frozen=True)
class SignAgreement:
    """Our delta of design N vs design 1 on a category next to the paper's range: same sign or not."""

    claim: PaperClaim
    run: str
    number: int
    delta: float | None
    agrees: bool | None
    cell: CategoryCell


def paper_agreement(stats: StudyStats) -> list[SignAgreement]:
    """One row per (paper category present here, design 2-5 present here): our delta next to the paper's.

    `agrees` is True when our delta has the paper's sign, False when it has the other sign, None when it is zero
    or missing. Empty when the reference is not design 1, because the paper's deltas are over design 1.
    """
    if stats.reference is None or stats.runs[stats.reference].number != REFERENCE_DESIGN:
        return []
    designs = [(key, run.number) for key, run in stats.runs.items() if run.trained and run.number in CLAIMED_DESIGNS]
    rows = []
    for category, claim in PAPER_DELTAS.items():
        if category not in stats.categories:
            continue
        for key, number in sorted(designs, key=lambda d: d[1]):
            cell = stats.categories[category].runs[key]
            agrees = None if cell.delta is None or cell.delta == 0 else claim.on_its_side(cell.delta)
            rows.append(SignAgreement(claim, key, number, cell.delta, agrees, cell))
    return rows
