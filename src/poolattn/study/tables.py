"""The report's score tables: each run's category means and its delta against the reference, overall and per category.

Presentation only: the numbers come from `StudyStats` (stats.py); `labels` carries each run's label as every table
prints it (with its inadequate mark).
"""

from __future__ import annotations

from pathlib import Path

from poolattn.study import fmt
from poolattn.study.render import Block, Bullets, Cell, Figure, Heading, Span, Table, para
from poolattn.study.results import StudyResults
from poolattn.study.stats import StudyStats


def short_label(stats: StudyStats, key: str, labels: dict[str, str]) -> str:
    """'design 1' for a numbered design (narrow table headers), else the run's label."""
    run = stats.runs[key]
    return f"design {run.number}" if run.trained and isinstance(run.number, int) else labels[key]


def reference_label(stats: StudyStats, labels: dict[str, str]) -> str:
    """The reference as the deltas use it: its run, or its design's mean over seeds."""
    members = stats.reference_runs
    if len(members) < 2:
        return labels[stats.reference]
    return f"{stats.runs[stats.reference].group_label} (the mean of its {len(members)} seeds)"


def _mean_cell(mean: float | None, missing: list[str]) -> Cell:
    return Cell(fmt.score(mean) + ("†" if missing and mean is not None else ""), ("num",))


def overall_section(stats: StudyStats, labels: dict[str, str], figures: dict[str, Path]) -> list[Block]:
    reference = stats.reference
    header = [Cell("Run")] + [Cell(c.title, ("num",)) for c in stats.categories.values()]
    header += [Cell("Mean (all tasks)", ("num",))]
    header += [Cell(f"Δ vs {short_label(stats, reference, labels)}", ("num",))] if reference else []
    rows = []
    for key in stats.run_order:
        total = stats.overall[key]
        row = [Cell(labels[key])] + [_mean_cell(cat.runs[key].mean, cat.runs[key].missing)
                                     for cat in stats.categories.values()]
        row.append(_mean_cell(total.mean, total.missing))
        if reference:
            row.append(Cell(fmt.DASH, ("num", "ref")) if key in stats.reference_runs
                       else Cell(fmt.signed(total.delta, 4), fmt.sign_tags(total.delta)))
        rows.append(row)
    blocks: list[Block] = [Heading("Overall", 2), Table(header, rows)]
    note = "Mean main score over each category's tasks; the overall mean averages all tasks (as MTEB does)."
    partial = any(cat.runs[k].missing and cat.runs[k].mean is not None
                  for cat in stats.categories.values() for k in stats.run_order)
    if partial or any(stats.overall[k].missing for k in stats.run_order):
        note += " †: mean over the tasks that run scored (some failed); see the category tables."
    blocks.append(para(note, muted=True))
    if "category_scores" in figures:
        blocks.append(Figure(figures["category_scores"], "grouped bars of each run's category means",
                             "Mean main score per category and overall; one color per run throughout the report."))
    return blocks


def _category(results: StudyResults, stats: StudyStats, labels: dict[str, str], category: str) -> list[Block]:
    cat = stats.categories[category]
    reference = stats.reference
    tasks = cat.tasks
    every_task = [t for c in stats.categories.values() for t in c.tasks]
    prefix, suffix, short = fmt.short_task_names(every_task, tasks)
    trimmed = " and ".join(f"{what} '{text}'" for what, text in (("prefix", prefix), ("suffix", suffix)) if text)
    metrics = sorted({(task.metric if (task := results.tasks.get(t)) else None) or "?" for t in tasks})
    header = [Cell("Run")] + [Cell(short[t], ("num", "task")) for t in tasks] + [Cell("Mean", ("num",))]
    if reference:
        header += [Cell(f"Δ vs {short_label(stats, reference, labels)}", ("num",))]
    rows = []
    for key in stats.run_order:
        run, cell = stats.runs[key], cat.runs[key]
        row = [Cell(labels[key])]
        for task in tasks:
            value = run.score(task)
            missing = "failed" if task in run.scores else "not run"
            row.append(Cell(fmt.score(value), ("num",)) if value is not None else Cell(missing, ("num", "missing")))
        row.append(_mean_cell(cell.mean, cell.missing))
        if reference:
            row.append(Cell(fmt.DASH, ("num", "ref")) if key in stats.reference_runs
                       else Cell(fmt.signed(cell.delta, 4), fmt.sign_tags(cell.delta)))
        rows.append(row)
    blocks: list[Block] = [
        Heading(cat.title, 3),
        para(f"{fmt.plural(len(tasks), 'task')}; main score {', '.join(metrics)}."
             + (f" Task names are shown without their common {trimmed}." if trimmed else ""), muted=True),
        Table(header, rows),
    ]
    items = []
    for key in stats.run_order:
        for task in cat.runs[key].excluded:
            who = ", ".join(stats.runs[k].label for k in (key, reference) if stats.runs[k].score(task) is None)
            items.append([Span(f"{task} is left out of the comparison of {labels[key]} with "
                               f"{reference_label(stats, labels)}: no score for {who}.")])
    if any(cat.runs[k].missing and cat.runs[k].mean is not None for k in stats.run_order):
        items.append([Span("†: mean over the tasks that run scored.")])
    if items:
        blocks.append(Bullets(items, muted=True))
    return blocks


def categories_section(results: StudyResults, stats: StudyStats, labels: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading("Per category", 2)]
    if stats.reference:
        blocks.append(para(
            f"Δ is the mean over the category's tasks of (run − {reference_label(stats, labels)}), on the tasks both runs "
            "scored. Red: lower than the reference; green: higher.", muted=True))
    for category in stats.categories:
        blocks += _category(results, stats, labels, category)
    return blocks
