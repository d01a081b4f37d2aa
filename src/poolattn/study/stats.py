"""The study's score tables: per-category means of every run and their deltas against a reference run.

The paper (Tang & Yang, 2024) compares each design with design 1 (EOS pooling, causal attention) per task category
by the delta of the category mean. This module computes those means and deltas from a `StudyResults`, with no
plotting or formatting; how sure each delta is comes from the item-level bootstrap (analysis.py). A task can fail for
one run (score None), so every delta pairs only the tasks scored by both runs and says which it left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from poolattn.study.results import Run, StudyResults

logger = logging.getLogger(__name__)

CATEGORY_TITLES = {
    "retrieval": "Retrieval",
    "reranking": "Reranking",
    "clustering": "Clustering",
    "pair_classification": "Pair classification",
    "classification": "Classification",
    "sts": "STS",
    "summarization": "Summarization",
}


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
class CategoryCell:
    """One run in one category: mean over the tasks it scored, and its delta against the reference.

    `delta` is None for the reference itself and when there is no reference run.
    """

    mean: float | None
    n_scored: int
    missing: list[str]
    delta: float | None = None
    excluded: list[str] = field(default_factory=list)
    """Tasks left out of the delta: one of the two runs has no score for them."""


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
    """The numbers of the report's score tables: per-category means and deltas of every run."""

    reference: str | None
    name: str | None
    backbone: str | None
    run_order: list[str]
    runs: Mapping[str, Run]
    categories: dict[str, CategoryStats]
    overall: dict[str, OverallCell]
    warnings: list[str]
    reference_runs: tuple[str, ...] = ()
    """The runs the reference stands for: its design's seeds, whose per-task mean the deltas compare with."""

    def to_json(self) -> dict[str, object]:
        runs = {k: {"label": r.label, "design": r.design, "number": r.number, "trained": r.trained,
                    "pooling": r.pooling, "attention": r.attention} for k, r in self.runs.items()}
        return {
            "reference": self.reference, "study": {"name": self.name, "backbone": self.backbone}, "run_order": self.run_order,
            "runs": runs,
            "categories": {c: {"title": cat.title, "tasks": cat.tasks,
                               "runs": {k: asdict(cell) for k, cell in cat.runs.items()}}
                           for c, cat in self.categories.items()},
            "overall": {k: asdict(cell) for k, cell in self.overall.items()},
            "warnings": self.warnings,
        }


def _cell(run: Run, ref: Run | None, tasks: list[str], is_ref: bool) -> CategoryCell:
    """One run in one category (or overall): mean, and delta against the reference."""
    missing = [t for t in tasks if run.score(t) is None]
    mean = category_mean(run, tasks)
    if ref is None or is_ref:
        return CategoryCell(mean, len(tasks) - len(missing), missing)
    xs, ys, left_out = _pair(run, ref, tasks)
    # Delta of the means over the tasks both runs scored, so a failed task never shifts one side only.
    return CategoryCell(mean, len(tasks) - len(missing), missing, _mean([a - b for a, b in zip(xs, ys)]), left_out)


def compare(results: StudyResults, reference: str = "1") -> StudyStats:
    """Per-category means and deltas vs the run `reference` for every run: the score tables.

    Each category holds, per run, a `CategoryCell`: `mean` (over the tasks the run scored), `delta` (mean over the
    tasks both runs scored of run - reference) and `excluded` (tasks left out of the pair). `overall` does the same
    over all tasks. A missing reference run is not an error (a partial
    study can still be summarized): deltas are then None. `to_json()` is what stats.json holds.
    """
    runs = results.runs
    order = results.run_order()
    categories = results.tasks_by_category()
    warnings: list[str] = []
    ref, members = _reference(runs, order, reference)
    if ref is None:
        warnings.append(f"reference run {reference!r} is not in the results (runs: {order}); no deltas or tests")
        logger.warning(warnings[-1])
    by_category = {
        category: CategoryStats(category_title(category), tasks,
                                {key: _cell(runs[key], ref, tasks, key in members) for key in order})
        for category, tasks in categories.items()
    }
    every_task = [t for tasks in categories.values() for t in tasks]
    overall = {}
    for key in order:
        cell = _cell(runs[key], ref, every_task, key in members)
        overall[key] = OverallCell(cell.mean, cell.n_scored, cell.missing, cell.delta, cell.excluded, len(every_task))
    return StudyStats(reference=reference if ref is not None else None, name=results.name,
                      backbone=results.backbone, run_order=order, runs={key: runs[key] for key in order},
                      categories=by_category, overall=overall, warnings=warnings, reference_runs=members)


def _reference(runs: Mapping[str, Run], order: list[str], key: str) -> tuple[Run | None, tuple[str, ...]]:
    """The run deltas are taken against, and the runs it stands for. With several seeds of the reference design,
    its score per task is their mean (over the seeds that scored it), so a delta compares with the design, as the
    intervals do, not with one of its seeds."""
    ref = runs.get(key)
    if ref is None:
        return None, ()
    members = tuple(k for k in order if runs[k].group == ref.group) if ref.group else (key,)
    if len(members) < 2:
        return ref, (key,)
    tasks = {t for k in members for t in runs[k].scores}
    return replace(ref, scores={t: _mean([s for k in members if (s := runs[k].score(t)) is not None])
                                for t in tasks}), members
