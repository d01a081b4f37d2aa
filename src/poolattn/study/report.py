"""The study report: `results.json` in, `report.md`, a self-contained `report.html`, plots and `stats.json` out.

The report is a list of blocks (render.py) rendered to Markdown and to HTML, so the two files never disagree. Every
number comes from one typed object, `analysis.analyse`'s `StudyAnalysis` (the score tables, intervals, seeds,
adequacy and verdicts), over the typed results (results.py); the sections only arrange and format them: the score
tables in tables.py, the evidence in evidence.py, how the runs were made in provenance.py, the summary and the
comparison with the paper here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from poolattn.study import evidence, fmt, plots
from poolattn.study.adequacy import marked
from poolattn.study.analysis import StudyAnalysis, analyse
from poolattn.study.paper import PAPER_DELTAS, REFERENCE_DESIGN
from poolattn.study.provenance import data_text, differences_section, machine_text, training_section
from poolattn.study.render import Block, Heading, Span, para, render_html, render_markdown
from poolattn.study.results import NOT_RECORDED, StudyResults, load_results
from poolattn.study.stats import StudyStats, category_title
from poolattn.study.tables import categories_section, overall_section, reference_label

logger = logging.getLogger(__name__)

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
STATS_JSON = "stats.json"
FIGURES = {"category_scores": "category_scores.png", "deltas": "deltas.png", "training_loss": "training_loss.png"}


def _wall_time(results: StudyResults) -> str:
    started, finished = results.started, results.finished
    if not started:
        return "wall time not recorded"
    if not finished:
        return f"started {started}, not finished (partial results)"
    try:
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return f"{started} to {finished}"
    return f"wall time {fmt.duration(seconds)} ({started} to {finished})"


def _steps_text(results: StudyResults) -> str:
    steps = sorted({r.train.steps for r in results.runs.values() if r.train and r.train.steps})
    if len(steps) == 1:
        return f"{steps[0]} steps per design"
    if steps:
        return f"{steps[0]} to {steps[-1]} steps per design"
    max_steps = results.settings.max_steps if results.settings else None
    return f"{max_steps} steps per design (planned)" if isinstance(max_steps, int) and max_steps > 0 \
        else "training steps not recorded"


def _summary(results: StudyResults, stats: StudyStats, labels: dict[str, str]) -> list[Block]:
    runs = stats.runs
    trained = sum(r.trained for r in runs.values())
    n_tasks = sum(len(c.tasks) for c in stats.categories.values())
    reference = stats.reference
    ref_text = (f"Deltas and tests are against {reference_label(stats, labels)}."
                if reference else "The reference run is missing, so there are no deltas or tests.")
    backbone = results.backbone or (results.settings.backbone if results.settings else None) or \
        "an unrecorded backbone"
    return [
        para(f"{fmt.plural(len(runs), 'run')} of ", Span(str(backbone), "code"),
             f" ({trained} trained, {len(runs) - trained} untrained) evaluated on {fmt.plural(n_tasks, 'task')} in "
             f"{len(stats.categories)} {'category' if len(stats.categories) == 1 else 'categories'}. "
             f"Training data: {data_text(results.settings)}; {_steps_text(results)}. "
             f"Machine: {machine_text(results.machine)}; {_wall_time(results)}. {ref_text}"),
        *[para(Span("Warning:", "strong"), " " + w) for w in stats.warnings],
    ]


def _paper_blocks(results: StudyResults, analysis: StudyAnalysis, labels: dict[str, str]) -> list[Block]:
    """The paper's published deltas, then the verdict on each of its claims (or why there is none)."""
    stats = analysis.table
    quoted = []
    for category, claim in PAPER_DELTAS.items():
        sig = sorted(claim.significant_for)
        which = "all significant" if sig == [2, 3, 4, 5] else f"significant for design {', '.join(map(str, sig))}"
        quoted.append(f"{category_title(category)} {fmt.signed(claim.low, 4)} to {fmt.signed(claim.high, 4)} ({which})")
    blocks: list[Block] = [Heading("Comparison with the paper", 2), para(
        "Tang & Yang (2024) report, for Mistral-7B on MTEB, these deltas of designs 2–5 over design 1 (range over "
        f"the four designs): {'; '.join(quoted)}. This study's backbone ", Span(str(results.backbone or "?"), "code"),
        ", training and datasets differ from the paper's, so the comparison below is about direction only: does "
        "each design move each category the same way?")]
    if analysis.verdicts:
        return blocks + evidence.verdict_section(analysis)
    if stats.reference is None:
        reason = "the reference run is missing"
    elif stats.runs[stats.reference].number != REFERENCE_DESIGN:
        reason = f"the reference is {labels[stats.reference]}, not design 1"
    else:
        reason = "it has no design 2-5 in a category the paper quotes"
    return blocks + [para(f"No comparison is possible for this study: {reason}.")]


def build_report(results: StudyResults, analysis: StudyAnalysis, figures: dict[str, Path]) -> list[Block]:
    """The whole report as blocks, in reading order."""
    stats = analysis.table
    labels = {k: marked(r.label, analysis.inadequate(k)) for k, r in stats.runs.items()}
    categories = {c: cat.tasks for c, cat in stats.categories.items()}
    blocks: list[Block] = [Heading(f"Pooling and attention study: {results.name or 'study'}", 1)]
    blocks += _summary(results, stats, labels)
    blocks += overall_section(stats, labels, figures)
    blocks += evidence.intervals_section(analysis, categories, figures)
    blocks += evidence.seeds_section(analysis, categories)
    blocks += categories_section(results, stats, labels)
    blocks += _paper_blocks(results, analysis, labels)
    blocks += differences_section(results, stats.run_order, labels)
    blocks += training_section(results, stats.run_order, labels, figures)
    blocks += evidence.adequacy_section(analysis, labels)
    return blocks


def write_report(results: StudyResults | Mapping[str, Any] | str | Path, out_dir: str | Path, *,
                 reference: str = "1", items_dir: str | Path | None = None,
                 analysis: StudyAnalysis | None = None) -> dict[str, Path]:
    """Write report.md, report.html, the PNG plots and stats.json into `out_dir`; return {name: path}.

    `results` is a results.json path, its content, or the results already loaded (`load_results`). Names:
    'markdown', 'html', 'stats' and one per figure written ('category_scores', 'deltas', 'training_loss'; the last two
    are skipped when nothing was compared or no loss was logged). The numbers come from `analysis` (computed here
    from the items under `items_dir`, by default the `items` folder beside a results.json path, when not given);
    stats.json holds it.
    """
    results = load_results(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if analysis is None:
        analysis = analyse(results, items_dir, reference=reference)
    stats = analysis.table
    paths: dict[str, Path] = {"stats": out / STATS_JSON}
    paths["stats"].write_text(json.dumps({**stats.to_json(), "analysis": analysis.to_json()}, indent=2,
                                         allow_nan=False) + "\n", encoding="utf-8")
    figures: dict[str, Path] = {"category_scores": plots.plot_category_scores(stats, out / FIGURES["category_scores"])}
    deltas = plots.plot_delta_intervals(analysis, out / FIGURES["deltas"])
    if deltas is not None:
        figures["deltas"] = deltas
    settings = results.settings
    loss_name = settings.loss_name if settings and settings.loss_name != NOT_RECORDED else "loss"
    loss = plots.plot_training_loss(results, stats, out / FIGURES["training_loss"], loss_name=f"{loss_name} loss")
    if loss is not None:
        figures["training_loss"] = loss
    paths.update(figures)

    blocks = build_report(results, analysis, figures)
    paths["markdown"] = out / REPORT_MD
    paths["markdown"].write_text(render_markdown(blocks), encoding="utf-8")
    paths["html"] = out / REPORT_HTML
    footer = f"Generated by poolattn {results.version or ''} from results.json.".replace("  ", " ")
    paths["html"].write_text(render_html(blocks, title=blocks[0].text, footer=footer), encoding="utf-8")
    logger.info("study report written to %s", paths["markdown"])
    return paths
