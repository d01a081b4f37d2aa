"""The report's figures: category means, deltas with their intervals against the reference, training loss curves.

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas attached inside each function, never through
`pyplot`: that leaves the process-wide backend and pyplot's figure registry alone (a study running inside a notebook
or a GUI keeps its own backend) and nothing leaks if a plot fails half-way. Every run keeps one color in every
figure, so a design can be followed from one plot to the next.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from poolattn.study.analysis import ALPHA, StudyAnalysis, significant
from poolattn.study.results import StudyResults
from poolattn.study.stats import StudyStats

logger = logging.getLogger(__name__)

DPI = 110
BASELINE_COLOR = "#9aa0a6"
# Colorblind-safe palette (Okabe-Ito), design 1..5 first, then anything else.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


def run_colors(stats: StudyStats) -> dict[str, str]:
    """{run key: color}: gray for untrained runs, design n gets PALETTE[n - 1], other designs the colors after."""
    colors: dict[str, str] = {}
    extra = 5
    for key in stats.run_order:
        run = stats.runs[key]
        number = run.number
        if not run.trained:
            colors[key] = BASELINE_COLOR
        elif isinstance(number, int) and 1 <= number <= 5:
            colors[key] = PALETTE[number - 1]
        else:
            colors[key] = PALETTE[extra % len(PALETTE)]
            extra += 1
    return colors


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def plot_category_scores(stats: StudyStats, path: Path) -> Path:
    """Grouped bars: each run's mean main score per category, plus the overall mean over all tasks."""
    order = stats.run_order
    colors = run_colors(stats)
    groups = [(c.title, c.runs) for c in stats.categories.values()] + [("Overall", stats.overall)]
    fig = _figure(max(8.0, 1.3 * len(groups) + 2.5), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(order), 1)
    x = np.arange(len(groups))
    for i, key in enumerate(order):
        values = [cells[key].mean for _, cells in groups]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width * 0.92, color=colors[key],
               label=stats.runs[key].label)
    ax.axvline(len(groups) - 1.5, color="#9ca3af", linewidth=0.8, linestyle=":")
    ax.set_xticks(x, [title for title, _ in groups])
    ax.set_ylabel("mean main score")
    top = max(((c[k].mean or 0.0) for _, c in groups for k in order), default=0.0)
    ax.set_ylim(0, min(1.0, top * 1.12) if top > 0 else 1.0)
    ax.set_title("Mean main score per task category")
    _style(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(order), 3), frameon=False, fontsize=9)
    return _save(fig, path)


def plot_delta_intervals(analysis: StudyAnalysis, path: Path) -> Path | None:
    """Each design's category delta vs the reference with its bootstrap interval as an error bar; '*': Holm p < alpha.

    Designs with several seeds are one bar each (all seeds together). Returns None when nothing was compared.
    """
    stats = analysis.table
    groups = [g for g, cells in analysis.comparisons.items() if any(cells.values())]
    if analysis.reference is None or not groups:
        return None
    colors = run_colors(stats)
    categories = list(stats.categories)
    fig = _figure(max(8.0, 1.3 * len(categories) + 2.5), 4.6)
    ax = fig.add_subplot()
    width = 0.8 / len(groups)
    x = np.arange(len(categories))
    span = max((max(abs(c.ci95[0]), abs(c.ci95[1])) for g in groups for c in analysis.comparisons[g].values() if c),
               default=0.0) or 0.01
    for i, group in enumerate(groups):
        color = colors.get(analysis.groups[group].runs[0], PALETTE[i % len(PALETTE)])
        for j, category in enumerate(categories):
            cell = analysis.comparisons[group].get(category)
            if cell is None:
                continue
            pos = x[j] - 0.4 + width * (i + 0.5)
            err = [[cell.delta - cell.ci95[0]], [cell.ci95[1] - cell.delta]]
            ax.bar(pos, cell.delta, width * 0.92, color=color, alpha=1.0 if significant(cell) else 0.45)
            ax.errorbar(pos, cell.delta, yerr=err, color="#1f2328", linewidth=1.0, capsize=2.5)
            if significant(cell):
                top = cell.ci95[1] if cell.delta >= 0 else cell.ci95[0]
                offset = 0.03 * span if cell.delta >= 0 else -0.03 * span
                ax.text(pos, top + offset, "*", ha="center", va="bottom" if offset > 0 else "top", fontsize=14,
                        fontweight="bold")
    ax.axhline(0, color="#374151", linewidth=0.9)
    ax.set_xticks(x, [stats.categories[c].title for c in categories])
    ax.set_ylim(-span * 1.25, span * 1.25)
    ax.set_ylabel("Δ mean main score")
    ax.set_title(f"Δ vs {analysis.groups[analysis.reference].label}, 95% bootstrap intervals "
                 f"(* and solid: Holm p < {ALPHA}; pale: not)", fontsize=10)
    _style(ax)
    from matplotlib.patches import Patch

    handles = [Patch(color=colors.get(analysis.groups[g].runs[0], PALETTE[i % len(PALETTE)]),
                     label=analysis.groups[g].label) for i, g in enumerate(groups)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(groups), 4),
              frameon=False, fontsize=9)
    return _save(fig, path)


def _smooth(values: np.ndarray) -> np.ndarray:
    """Exponential moving average, light enough to keep the trend's shape (span ~ 1/10 of the curve)."""
    if len(values) < 5:
        return values
    alpha = min(1.0, 2.0 / (max(len(values) // 10, 1) + 1))
    out = np.empty_like(values)
    out[0] = values[0]
    for i in range(1, len(values)):
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


def plot_training_loss(results: StudyResults, stats: StudyStats, path: Path, *,
                       loss_name: str = "loss") -> Path | None:
    """Loss against step for every trained run: raw log faint, smoothed curve solid. None if no run logged loss."""
    colors = run_colors(stats)
    curves = []
    for key in stats.run_order:
        train = results.runs[key].train
        points = np.array(train.losses if train else [], dtype=float).reshape(-1, 2)
        if len(points):
            curves.append((key, points))
    if not curves:
        return None
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    for key, points in curves:
        steps, loss = points[:, 0], points[:, 1]
        ax.plot(steps, loss, color=colors[key], alpha=0.25, linewidth=1.0)
        ax.plot(steps, _smooth(loss), color=colors[key], linewidth=2.0, label=stats.runs[key].label)
    ax.set_xlabel("training step")
    ax.set_ylabel(loss_name)
    ax.set_title("Training loss (faint: as logged; solid: smoothed)")
    _style(ax)
    ax.legend(frameon=False, fontsize=9)
    return _save(fig, path)
