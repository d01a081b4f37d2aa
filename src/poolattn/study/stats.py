"""The study's numbers: per-category means, deltas against a reference design, and Wilcoxon signed-rank tests.

The paper (Tang & Yang, 2024) compares each design with design 1 (EOS pooling, causal attention) per task category:
the delta of the category mean and a Wilcoxon signed-rank test over the category's datasets, pairing the two
designs' main scores dataset by dataset. This module does the same from a `results.json`, with no plotting or
formatting, so the runner and the tests can check the numbers without rendering anything.

Two pitfalls shape the code. A small study has few datasets per category, and the two-sided exact test on n
datasets cannot give p < 0.05 when n < 6 (the most extreme outcome, every difference with the same sign, has
probability 2 / 2^n), so such cells get an explanation instead of a result that only looks like one. And a task can
fail for one run (score null), so every comparison pairs only the tasks scored by both runs and says which it left
out.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ALPHA = 0.05
"""Significance level, as in the paper."""

MIN_TESTABLE = 6
"""Fewest non-zero paired differences for which the two-sided exact test can reach p < ALPHA (2 / 2^6 = 0.031)."""

CATEGORY_ORDER = ("retrieval", "reranking", "clustering", "pair_classification", "classification", "sts",
                  "summarization")
CATEGORY_TITLES = {
    "retrieval": "Retrieval",
    "reranking": "Reranking",
    "clustering": "Clustering",
    "pair_classification": "Pair classification",
    "classification": "Classification",
    "sts": "STS",
    "summarization": "Summarization",
}
UNKNOWN_CATEGORY = "other"

PAPER_DELTAS: dict[str, dict[str, Any]] = {
    "sts": {"low": 0.0095, "high": 0.0166, "significant": frozenset({2, 3, 4, 5})},
    "retrieval": {"low": 0.0102, "high": 0.0226, "significant": frozenset({5})},
    "classification": {"low": -0.0483, "high": -0.0033, "significant": frozenset({5})},
    "clustering": {"low": -0.0493, "high": -0.0017, "significant": frozenset({5})},
}
"""Published Mistral-7B deltas of designs 2-5 over design 1 (range over the four designs) and which were significant."""

_DIFF_DECIMALS = 10
"""Differences are rounded here so float noise (0.81 - 0.80 vs 0.72 - 0.71) does not break real ties."""


# ------------------------------------------------------------------------------------------------ loading


def load_results(results: dict[str, Any] | str | Path) -> dict[str, Any]:
    """The results dict, read from a `results.json` path if need be, with its required keys checked.

    Raises:
        TypeError: `results` is neither a mapping nor a path.
        ValueError: the file is not JSON or lacks `runs`, or a run's `scores` is not a mapping.
    """
    if isinstance(results, (str, Path)):
        path = Path(results)
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"results file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(results, dict):
        raise TypeError(f"results must be a mapping (results.json's content) or its path, got {type(results).__name__}")
    if not isinstance(results.get("runs"), dict):
        raise ValueError(f"results needs a 'runs' mapping (as results.json writes); got keys {sorted(results)}")
    for key, run in results["runs"].items():
        if not isinstance(run, dict) or not isinstance(run.get("scores", {}), dict):
            raise ValueError(f"run {key!r} must be a mapping with a 'scores' mapping of task -> main score")
    return results


def settings_from_runs(results: dict[str, Any]) -> dict[str, Any]:
    """`results` with study.config replaced by the settings the trained runs recorded (their identities), and
    study.run_differences listing how the trained runs differ beyond their design: the report never prints a
    setting taken from the command line of a later invocation."""
    from poolattn.study.plan import DESIGN_KEYS
    from poolattn.training.identity import identity_differences

    runs = [(r.get("label", k), r.get("identity")) for k, r in (results.get("runs") or {}).items() if r.get("trained")]
    recorded = [(label, identity) for label, identity in runs if identity]
    if not recorded:
        return results
    study = dict(results.get("study") or {})
    (first_label, first), differences = recorded[0], []
    study["config"] = first.get("config") or {}
    ignore = ["study", *(".".join(k) for k in DESIGN_KEYS)]
    for label, identity in recorded[1:]:
        found = identity_differences(first, identity, ignore=ignore)
        if found:
            differences.append(f"{label} differs from {first_label}: {'; '.join(found)}")
    differences += [f"{label} recorded no settings (made by an older poolattn)" for label, identity in runs
                    if not identity]
    study["run_differences"] = differences
    return {**results, "study": study}


def run_order(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Run keys in report order: untrained runs first, then designs by number, then other designs by key."""

    def rank(key: str) -> tuple[int, float, str]:
        run = runs[key]
        if not run.get("trained", True) or key == "baseline":
            return (0, 0, key)
        number = run.get("number")
        if isinstance(number, int):
            return (1, number, key)
        return (2, 0, key)

    return sorted(runs, key=rank)


def tasks_by_category(results: dict[str, Any]) -> dict[str, list[str]]:
    """{category: [task, ...]} in the paper's category order, tasks sorted; unknown tasks go under 'other'."""
    declared = results.get("tasks") or {}
    names = set(declared)
    for run in results["runs"].values():
        names.update(run.get("scores") or {})
    grouped: dict[str, list[str]] = {}
    for name in sorted(names):
        category = (declared.get(name) or {}).get("category") or UNKNOWN_CATEGORY
        if name not in declared:
            logger.warning("task %r has scores but no entry in results['tasks']; reported under %r", name, category)
        grouped.setdefault(category, []).append(name)
    order = list(CATEGORY_ORDER) + sorted(c for c in grouped if c not in CATEGORY_ORDER)
    return {c: grouped[c] for c in order if c in grouped}


def category_title(category: str) -> str:
    return CATEGORY_TITLES.get(category, category.replace("_", " ").capitalize())


# ---------------------------------------------------------------------------------------------- the test


def _score(run: dict[str, Any], task: str) -> float | None:
    value = (run.get("scores") or {}).get(task)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
        return WilcoxonTest(n, k, note=f"all {_plural(n, 'difference')} are zero: nothing to test")
    ties = len(np.unique(np.abs(nonzero))) < k
    result = wilcoxon(nonzero, method="auto" if ties else "exact")
    method = "exact" if not ties else ("permutation" if k <= 13 else "asymptotic")
    if k < MIN_TESTABLE:
        dropped = f" with a non-zero difference ({n - k} tied at zero, dropped)" if k < n else ""
        note = f"{_plural(k, 'dataset')}{dropped}: too few for a Wilcoxon test (p can not fall below {2 / 2 ** k:.3g})"
        return WilcoxonTest(n, k, float(result.statistic), float(result.pvalue), method, False, note)
    note = f"{_plural(n - k, 'zero difference')} dropped" if k < n else None
    return WilcoxonTest(n, k, float(result.statistic), float(result.pvalue), method, True, note)


# ---------------------------------------------------------------------------------------------- compare


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _pair(run: dict[str, Any], ref: dict[str, Any], tasks: list[str]) -> tuple[list[float], list[float], list[str]]:
    """Scores of `run` and `ref` on the tasks both scored, and the tasks left out."""
    xs, ys, left_out = [], [], []
    for task in tasks:
        a, b = _score(run, task), _score(ref, task)
        if a is None or b is None:
            left_out.append(task)
        else:
            xs.append(a)
            ys.append(b)
    return xs, ys, left_out


@dataclass(frozen=True)
class RunInfo:
    """What the report says about a run: its label and design."""

    label: str
    design: str | None
    number: int | None
    trained: bool
    pooling: str | None
    attention: str | None


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

    def to_json(self) -> dict[str, Any]:
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
    study: dict[str, Any]
    run_order: list[str]
    runs: dict[str, RunInfo]
    categories: dict[str, CategoryStats]
    overall: dict[str, OverallCell]
    warnings: list[str]
    alpha: float = ALPHA
    min_testable: int = MIN_TESTABLE
    test: str = "Wilcoxon signed-rank, two-sided, zero differences dropped, paired on per-task main scores"

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "alpha": self.alpha, "min_testable": self.min_testable, "test": self.test,
            "study": self.study, "run_order": self.run_order,
            "runs": {k: asdict(r) for k, r in self.runs.items()},
            "categories": {c: {"title": cat.title, "tasks": cat.tasks,
                               "runs": {k: cell.to_json() for k, cell in cat.runs.items()}}
                           for c, cat in self.categories.items()},
            "overall": {k: asdict(cell) for k, cell in self.overall.items()},
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyStats:
        """Back from `to_json` (stats.json): the test fields become a WilcoxonTest again."""

        def cell(raw: dict[str, Any]) -> CategoryCell:
            test = None
            if raw.get("n") is not None:
                test = WilcoxonTest(raw["n"], raw["n_nonzero"], raw["statistic"], raw["p"], raw["method"],
                                    raw["testable"], raw["note"])
            return CategoryCell(raw["mean"], raw["n_scored"], raw["missing"], raw["delta"], raw["excluded"], test,
                                None if test else raw["note"])

        return cls(
            reference=data["reference"], study=data["study"], run_order=data["run_order"],
            runs={k: RunInfo(**r) for k, r in data["runs"].items()},
            categories={c: CategoryStats(cat["title"], cat["tasks"], {k: cell(v) for k, v in cat["runs"].items()})
                        for c, cat in data["categories"].items()},
            overall={k: OverallCell(**v) for k, v in data["overall"].items()},
            warnings=data["warnings"], alpha=data["alpha"], min_testable=data["min_testable"], test=data["test"])


def _run_info(key: str, run: dict[str, Any]) -> RunInfo:
    return RunInfo(label=run.get("label") or key, design=run.get("design"), number=run.get("number"),
                   trained=bool(run.get("trained", True)), pooling=run.get("pooling"), attention=run.get("attention"))


def _cell(run: dict[str, Any], ref: dict[str, Any] | None, tasks: list[str], is_ref: bool) -> CategoryCell:
    """One run in one category (or overall): mean, and delta and test against the reference."""
    scored = [s for s in (_score(run, t) for t in tasks) if s is not None]
    missing = [t for t in tasks if _score(run, t) is None]
    if ref is None or is_ref:
        return CategoryCell(_mean(scored), len(scored), missing, reason="reference" if is_ref else "no reference run")
    xs, ys, left_out = _pair(run, ref, tasks)
    # Delta of the means over the tasks both runs scored, so a failed task never shifts one side only.
    return CategoryCell(_mean(scored), len(scored), missing, _mean([a - b for a, b in zip(xs, ys)]), left_out,
                        wilcoxon_test(xs, ys))


def compare(results: dict[str, Any] | str | Path, reference: str = "1") -> StudyStats:
    """Per-category means, deltas vs `reference` and Wilcoxon tests for every run: the numbers of the score tables.

    Each category holds, per run, a `CategoryCell`: `mean` (over the tasks the run scored), `delta` (mean over the
    tasks both runs scored of run - reference), the Wilcoxon `test` and `excluded` (tasks left out of the pair).
    `overall` does the same over all tasks, without a test. A missing reference run is not an error (a partial
    study can still be summarized): deltas are then None. `to_json()` is what stats.json holds.
    """
    results = load_results(results)
    runs = results["runs"]
    order = run_order(runs)
    categories = tasks_by_category(results)
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
    return StudyStats(
        reference=reference if ref is not None else None,
        study={k: (results.get("study") or {}).get(k) for k in ("name", "backbone")},
        run_order=order, runs={key: _run_info(key, runs[key]) for key in order}, categories=by_category,
        overall=overall, warnings=warnings)


# ------------------------------------------------------------------------------------- paper comparison


@dataclass(frozen=True)
class SignAgreement:
    """Our delta of design N vs design 1 on a category next to the paper's range: same sign or not."""

    category: str
    run: str
    number: int
    delta: float | None
    paper_low: float
    paper_high: float
    paper_significant: bool
    agrees: bool | None
    cell: CategoryCell

    @property
    def paper_sign(self) -> int:
        return 1 if self.paper_low > 0 else -1


def paper_agreement(stats: StudyStats) -> list[SignAgreement]:
    """One row per (paper category present here, design 2-5 present here): our delta next to the paper's.

    `agrees` is True when our delta has the paper's sign, False when it has the other sign, None when it is zero
    or missing. Empty when the reference is not design 1, because the paper's deltas are over design 1.
    """
    if stats.reference is None or stats.runs[stats.reference].number != 1:
        return []
    designs = [(key, run.number) for key, run in stats.runs.items() if run.trained and run.number in (2, 3, 4, 5)]
    rows = []
    for category, paper in PAPER_DELTAS.items():
        if category not in stats.categories:
            continue
        paper_sign = 1 if paper["low"] > 0 else -1
        for key, number in sorted(designs, key=lambda d: d[1]):
            cell = stats.categories[category].runs[key]
            agrees = None if cell.delta is None or cell.delta == 0 else bool(np.sign(cell.delta) == paper_sign)
            rows.append(SignAgreement(category, key, number, cell.delta, paper["low"], paper["high"],
                                      number in paper["significant"], agrees, cell))
    return rows
