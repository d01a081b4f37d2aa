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


def wilcoxon_test(x: list[float], y: list[float]) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired scores x vs y, with a note where it cannot say anything.

    Zero differences are dropped first (Wilcoxon's convention, scipy's default `zero_method="wilcox"`); the test
    is exact when no differences tie and, with ties, scipy's exhaustive permutation (n <= 13) or normal
    approximation. `p` is reported even below MIN_TESTABLE, but `testable` is then false and `note` says why.
    """
    from scipy.stats import wilcoxon

    diffs = np.round(np.asarray(x, dtype=float) - np.asarray(y, dtype=float), _DIFF_DECIMALS)
    nonzero = diffs[diffs != 0]
    n, k = len(diffs), len(nonzero)
    out: dict[str, Any] = {"n": n, "n_nonzero": k, "statistic": None, "p": None, "method": None,
                           "testable": False, "note": None}
    if n == 0:
        out["note"] = "no dataset scored for both runs: nothing to test"
        return out
    if k == 0:
        out["note"] = f"all {_plural(n, 'difference')} are zero: nothing to test"
        return out
    ties = len(np.unique(np.abs(nonzero))) < k
    method = "auto" if ties else "exact"
    result = wilcoxon(nonzero, method=method)
    out["statistic"] = float(result.statistic)
    out["p"] = float(result.pvalue)
    out["method"] = "exact" if not ties else ("permutation" if k <= 13 else "asymptotic")
    if k < MIN_TESTABLE:
        dropped = f" with a non-zero difference ({n - k} tied at zero, dropped)" if k < n else ""
        out["note"] = (f"{_plural(k, 'dataset')}{dropped}: too few for a Wilcoxon test "
                       f"(p can not fall below {2 / 2 ** k:.3g})")
    else:
        out["testable"] = True
        if k < n:
            out["note"] = f"{_plural(n - k, 'zero difference')} dropped"
    return out


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


def _run_summary(key: str, run: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": run.get("label") or key,
        "design": run.get("design"),
        "number": run.get("number"),
        "trained": bool(run.get("trained", True)),
        "pooling": run.get("pooling"),
        "attention": run.get("attention"),
    }


def _cell(run: dict[str, Any], ref: dict[str, Any] | None, tasks: list[str], is_ref: bool) -> dict[str, Any]:
    """One run in one category (or overall): mean, and delta and test against the reference."""
    scored = [s for s in (_score(run, t) for t in tasks) if s is not None]
    cell: dict[str, Any] = {
        "mean": _mean(scored),
        "n_scored": len(scored),
        "missing": [t for t in tasks if _score(run, t) is None],
        "delta": None,
        "excluded": [],
    }
    if ref is None or is_ref:
        cell.update(n=None, n_nonzero=None, statistic=None, p=None, method=None, testable=False,
                    significant=False, note="reference" if is_ref else "no reference run")
        return cell
    xs, ys, left_out = _pair(run, ref, tasks)
    # Delta of the means over the tasks both runs scored, so a failed task never shifts one side only.
    cell["delta"] = _mean([a - b for a, b in zip(xs, ys)])
    cell["excluded"] = left_out
    cell.update(wilcoxon_test(xs, ys))
    cell["significant"] = bool(cell["testable"] and cell["p"] is not None and cell["p"] < ALPHA)
    return cell


def compare(results: dict[str, Any] | str | Path, reference: str = "1") -> dict[str, Any]:
    """Per-category means, deltas vs `reference` and Wilcoxon tests for every run: the numbers of the report.

    Pure and JSON-ready (None for missing numbers). Each category entry holds, per run: `mean` (over the tasks
    the run scored), `delta` (mean over the tasks both runs scored of run - reference), the test's `statistic`,
    `p`, `n` (paired datasets), `n_nonzero`, `testable`, `significant` (p < ALPHA and testable), `excluded`
    (tasks left out of the pair) and `note`. `overall` does the same over all tasks, without a test. A missing
    reference run is not an error (a partial study can still be summarized): deltas are then None.
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
    out: dict[str, Any] = {
        "reference": reference if ref is not None else None,
        "alpha": ALPHA,
        "min_testable": MIN_TESTABLE,
        "test": "Wilcoxon signed-rank, two-sided, zero differences dropped, paired on per-task main scores",
        "study": {k: (results.get("study") or {}).get(k) for k in ("name", "backbone")},
        "run_order": order,
        "runs": {key: _run_summary(key, runs[key]) for key in order},
        "categories": {},
        "overall": {},
        "warnings": warnings,
    }
    for category, tasks in categories.items():
        out["categories"][category] = {
            "title": category_title(category),
            "tasks": tasks,
            "runs": {key: _cell(runs[key], ref, tasks, key == reference) for key in order},
        }
    every_task = [t for tasks in categories.values() for t in tasks]
    for key in order:
        cell = _cell(runs[key], ref, every_task, key == reference)
        out["overall"][key] = {k: cell[k] for k in ("mean", "n_scored", "missing", "delta", "excluded")}
        out["overall"][key]["n_tasks"] = len(every_task)
    return out


# ------------------------------------------------------------------------------------- paper comparison


def paper_agreement(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (paper category present here, design 2-5 present here): our delta next to the paper's.

    `agrees` is True when our delta has the paper's sign, False when it has the other sign, None when it is zero
    or missing. Empty when the reference is not design 1, because the paper's deltas are over design 1.
    """
    reference = stats.get("reference")
    if reference is None or stats["runs"].get(reference, {}).get("number") != 1:
        return []
    designs = [(key, run["number"]) for key, run in stats["runs"].items()
               if run["trained"] and run["number"] in (2, 3, 4, 5)]
    rows = []
    for category, paper in PAPER_DELTAS.items():
        if category not in stats["categories"]:
            continue
        paper_sign = 1 if paper["low"] > 0 else -1
        for key, number in sorted(designs, key=lambda d: d[1]):
            cell = stats["categories"][category]["runs"][key]
            delta = cell["delta"]
            agrees = None if delta is None or delta == 0 else (np.sign(delta) == paper_sign)
            rows.append({
                "category": category, "run": key, "number": number, "delta": delta,
                "paper_low": paper["low"], "paper_high": paper["high"], "paper_sign": paper_sign,
                "paper_significant": number in paper["significant"],
                "agrees": None if agrees is None else bool(agrees),
                "testable": cell["testable"], "p": cell["p"], "significant": cell["significant"],
                "n": cell["n"], "note": cell["note"],
            })
    return rows
