"""The study report: `results.json` in, `report.md`, a self-contained `report.html`, plots and `stats.json` out.

The report is a list of blocks (render.py) rendered to Markdown and to HTML, so the two files never disagree. The
numbers all come from typed objects: the score tables from `stats.compare` (a `StudyStats`), the intervals, seeds,
convergence and verdicts from `analysis.analyse` (a `StudyAnalysis`, rendered by evidence.py); this module only
arranges and formats them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from poolattn.config import BF16_UNSET
from poolattn.evaluation.items import ITEMS_DIR
from poolattn.study import evidence, plots
from poolattn.study.analysis import StudyAnalysis, analyse
from poolattn.study.render import (
    Block,
    Bullets,
    Cell,
    Figure,
    Heading,
    Para,
    Span,
    Table,
    para,
    render_html,
    render_markdown,
)
from poolattn.study.stats import (
    ALPHA,
    MIN_TESTABLE,
    PAPER_DELTAS,
    category_title,
    compare,
    load_results,
    StudyStats,
    paper_agreement,
    run_order,
    settings_from_runs,
)

logger = logging.getLogger(__name__)

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
STATS_JSON = "stats.json"
FIGURES = {"category_scores": "category_scores.png", "deltas": "deltas.png", "training_loss": "training_loss.png"}
DASH = "—"

# ----------------------------------------------------------------------------------------- formatting


def _score(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def _delta(value: float | None) -> str:
    if value is None:
        return DASH
    return "0.0000" if value == 0 else f"{value:+.4f}".replace("-", "−")


def _sign_tags(value: float | None) -> tuple[str, ...]:
    if value is None or value == 0:
        return ("num",)
    return ("num", "pos" if value > 0 else "neg")


def _pvalue(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _count(n: int | None) -> str:
    if n is None:
        return DASH
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


def _short_label(stats: StudyStats, key: str) -> str:
    """'design 1' for a numbered design (narrow table headers), else the run's label."""
    run = stats.runs[key]
    return f"design {run.number}" if run.trained and isinstance(run.number, int) else run.label


def _get(tree: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _camel_words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+|[^A-Za-z0-9]+", name)


def _shared_words(word_lists: list[list[str]], *, from_end: bool) -> int:
    """How many leading (or trailing) words all lists share, always leaving at least one word of each."""
    if len(word_lists) < 2:
        return 0
    count = 0
    while all(len(w) > count + 1 for w in word_lists):
        index = -(count + 1) if from_end else count
        if len({w[index] for w in word_lists}) != 1:
            break
        count += 1
    return count


def _short_names(all_tasks: list[str], tasks: list[str]) -> tuple[str, str, dict[str, str]]:
    """`tasks` without the CamelCase prefix every task of the study shares and the suffix the category's tasks share.

    Suite names are long and alike ('PoolattnTrecQuestionClassification'); 'TrecQuestion' under a 'Classification'
    heading keeps a seven-task table inside the page. Returns (prefix, suffix, {task: short name}).
    """
    prefix_len = _shared_words([_camel_words(t) for t in all_tasks], from_end=False)
    cut = [_camel_words(t)[prefix_len:] for t in tasks]
    suffix_len = _shared_words(cut, from_end=True)
    prefix = "".join(_camel_words(all_tasks[0])[:prefix_len]) if all_tasks else ""
    suffix = "".join(cut[0][len(cut[0]) - suffix_len:]) if suffix_len else ""
    return prefix, suffix, {t: "".join(w[:len(w) - suffix_len]) for t, w in zip(tasks, cut)}


# -------------------------------------------------------------------------------------------- sections


def _wall_time(study: dict[str, Any]) -> str:
    started, finished = study.get("started"), study.get("finished")
    if not started:
        return "wall time not recorded"
    if not finished:
        return f"started {started}, not finished (partial results)"
    try:
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return f"{started} to {finished}"
    return f"wall time {_duration(seconds)} ({started} to {finished})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _data_text(config: dict[str, Any]) -> str:
    if "data" not in config:
        return "not recorded"
    data = config["data"] or {}
    source = data.get("dataset_name") or data.get("dataset_file_path") or "the bundled training set"
    extras = []
    if data.get("max_records"):
        extras.append(f"at most {data['max_records']} records")
    if data.get("holdout"):
        extras.append(f"{data['holdout']} records held out for the recall@1 check")
    return source + (f" ({', '.join(extras)})" if extras else "")


def _steps_text(results: dict[str, Any], config: dict[str, Any]) -> str:
    steps = sorted({r["train"]["steps"] for r in results["runs"].values() if r.get("train") and r["train"].get("steps")})
    if len(steps) == 1:
        return f"{steps[0]} steps per design"
    if steps:
        return f"{steps[0]} to {steps[-1]} steps per design"
    max_steps = _get(config, "train.max_steps")
    return f"{max_steps} steps per design (planned)" if isinstance(max_steps, int) and max_steps > 0 \
        else "training steps not recorded"


def _machine_text(machine: dict[str, Any]) -> str:
    if not machine:
        return "not recorded"
    threads = f" ({machine['threads']} threads)" if machine.get("threads") else ""
    capability = f", torch CPU capability {machine['cpu_capability']}" if machine.get("cpu_capability") else ""
    return (f"{machine.get('cpu') or 'unknown CPU'}{threads}{capability}, torch {machine.get('torch') or '?'}, "
            f"device {machine.get('device') or '?'}")


def _summary(results: dict[str, Any], stats: StudyStats) -> list[Block]:
    study = results.get("study") or {}
    config = study.get("config") or {}
    runs = stats.runs
    trained = sum(r.trained for r in runs.values())
    n_tasks = sum(len(c.tasks) for c in stats.categories.values())
    reference = stats.reference
    ref_text = (f"Deltas and tests are against {runs[reference].label}."
                if reference else "The reference run is missing, so there are no deltas or tests.")
    backbone = study.get("backbone") or _get(config, "model.backbone") or "an unrecorded backbone"
    return [
        para(f"{_plural(len(runs), 'run')} of ", Span(str(backbone), "code"),
           f" ({trained} trained, {len(runs) - trained} untrained) evaluated on {_plural(n_tasks, 'task')} in "
           f"{len(stats.categories)} {'category' if len(stats.categories) == 1 else 'categories'}. "
           f"Training data: {_data_text(config)}; {_steps_text(results, config)}. "
           f"Machine: {_machine_text(study.get('machine') or {})}; {_wall_time(study)}. {ref_text}"),
        *[para(Span("Warning:", "strong"), " " + w) for w in stats.warnings],
    ]


def _overall(stats: StudyStats, figures: dict[str, Path]) -> list[Block]:
    reference = stats.reference
    header = [Cell("Run")] + [Cell(c.title, ("num",)) for c in stats.categories.values()]
    header += [Cell("Mean (all tasks)", ("num",))]
    header += [Cell(f"Δ vs {_short_label(stats, reference)}", ("num",))] if reference else []
    rows, partial = [], False
    for key in stats.run_order:
        row = [Cell(stats.runs[key].label)]
        for cat in stats.categories.values():
            cell = cat.runs[key]
            dagger = "†" if cell.missing and cell.mean is not None else ""
            partial |= bool(dagger)
            row.append(Cell(_score(cell.mean) + dagger, ("num",)))
        total = stats.overall[key]
        dagger = "†" if total.missing and total.mean is not None else ""
        row.append(Cell(_score(total.mean) + dagger, ("num",)))
        if reference:
            row.append(Cell(DASH, ("num", "ref")) if key == reference
                       else Cell(_delta(total.delta), _sign_tags(total.delta)))
        rows.append(row)
    blocks: list[Block] = [Heading("Overall", 2), Table(header, rows)]
    note = "Mean main score over each category's tasks; the overall mean averages all tasks (as MTEB does)."
    if partial or any(stats.overall[k].missing for k in stats.run_order):
        note += " †: mean over the tasks that run scored (some failed); see the category tables."
    blocks.append(para(note, muted=True))
    if "category_scores" in figures:
        blocks.append(Figure(figures["category_scores"], "grouped bars of each run's category means",
                             "Mean main score per category and overall; one color per run throughout the report."))
    return blocks


def _failed_for(results: dict[str, Any], task: str, keys: list[str]) -> list[str]:
    return [results["runs"][k].get("label") or k for k in keys
            if (results["runs"][k].get("scores") or {}).get(task) is None]


def _category(results: dict[str, Any], stats: StudyStats, category: str) -> list[Block]:
    cat = stats.categories[category]
    reference = stats.reference
    tasks = cat.tasks
    every_task = [t for c in stats.categories.values() for t in c.tasks]
    prefix, suffix, short = _short_names(every_task, tasks)
    trimmed = " and ".join(f"{what} '{text}'" for what, text in (("prefix", prefix), ("suffix", suffix)) if text)
    metrics = sorted({(results.get("tasks") or {}).get(t, {}).get("main_score_name") or "?" for t in tasks})
    ref_label = stats.runs[reference].label if reference else ""
    header = [Cell("Run")] + [Cell(short[t], ("num", "task")) for t in tasks] + [Cell("Mean", ("num",))]
    if reference:
        header += [Cell(f"Δ vs {_short_label(stats, reference)}", ("num",)), Cell("Wilcoxon p", ("num",))]
    notes: dict[str, list[str]] = {}
    rows = []
    for key in stats.run_order:
        run, cell = results["runs"][key], cat.runs[key]
        row = [Cell(stats.runs[key].label)]
        for task in tasks:
            value = (run.get("scores") or {}).get(task)
            missing = "failed" if task in (run.get("scores") or {}) else "not run"
            row.append(Cell(_score(value), ("num",)) if value is not None else Cell(missing, ("num", "missing")))
        row.append(Cell(_score(cell.mean) + ("†" if cell.missing and cell.mean is not None else ""),
                        ("num",)))
        if reference:
            if key == reference:
                row += [Cell(DASH, ("num", "ref")), Cell(DASH, ("num", "ref"))]
            else:
                tags = _sign_tags(cell.delta) + (("sig",) if cell.significant else ())
                row.append(Cell(_delta(cell.delta), tags))
                marker = ""
                if cell.note:  # why there is no p, or what the test dropped
                    notes.setdefault(cell.note, []).append(stats.runs[key].label)
                    marker = f" [{list(notes).index(cell.note) + 1}]"
                if cell.testable:
                    p_tags = ("num", "sig") if cell.significant else ("num",)
                    row.append(Cell(_pvalue(cell.p) + marker, p_tags))
                else:
                    row.append(Cell("n/a" + marker, ("num", "missing")))
        rows.append(row)
    blocks: list[Block] = [
        Heading(cat.title, 3),
        para(f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}; main score {', '.join(metrics)}."
           + (f" Task names are shown without their common {trimmed}." if trimmed else ""), muted=True),
        Table(header, rows),
    ]
    compared = len(stats.run_order) - 1
    items = [[Span(f"[{i}] {note} ({'all compared runs' if len(who) == compared else ', '.join(who)}).")]
             for i, (note, who) in enumerate(notes.items(), 1)]
    for key in stats.run_order:
        for task in cat.runs[key].excluded:
            who = ", ".join(_failed_for(results, task, [key, reference]))
            items.append([Span(f"{task} is left out of the comparison of {stats.runs[key].label} with "
                               f"{ref_label}: no score for {who}.")])
    if any(cat.runs[k].missing and cat.runs[k].mean is not None for k in stats.run_order):
        items.append([Span("†: mean over the tasks that run scored.")])
    if items:
        blocks.append(Bullets(items, muted=True))
    return blocks


def _categories(results: dict[str, Any], stats: StudyStats, figures: dict[str, Path]) -> list[Block]:
    reference = stats.reference
    blocks: list[Block] = [Heading("Per category", 2)]
    if reference:
        ref_label = stats.runs[reference].label
        blocks.append(para(
            f"Δ is the mean over the category's tasks of (run − {ref_label}), on the tasks both runs scored. p is a "
            f"two-sided Wilcoxon signed-rank test pairing the two runs' scores dataset by dataset (zero differences "
            f"dropped; exact unless differences tie), as in the paper. With n datasets the smallest possible p is "
            f"2/2^n, so a category needs at least {MIN_TESTABLE} datasets with a difference to show p < {ALPHA}; "
            f"smaller ones get n/a and an explanation. Bold, highlighted cells: p < {ALPHA}. Red: lower than the "
            f"reference; green: higher.", muted=True))
        if "deltas" in figures:
            blocks.append(Figure(figures["deltas"], "bars of each design's category delta vs the reference",
                                 f"Δ of each trained run's category mean vs {ref_label} (untrained runs left out: "
                                 f"their deltas would flatten the rest). * marks p < {ALPHA}; pale bars had too "
                                 f"few datasets to test."))
    for category in stats.categories:
        blocks += _category(results, stats, category)
    return blocks


def _paper_blocks(stats: StudyStats, level: int = 2, analysis: StudyAnalysis | None = None) -> list[Block]:
    """The paper's published deltas, then the verdict table when there are intervals (the sign table without)."""
    blocks: list[Block] = [Heading("Comparison with the paper", level)]
    quoted = []
    for category, paper in PAPER_DELTAS.items():
        sig = sorted(paper["significant"])
        which = "all significant" if sig == [2, 3, 4, 5] else f"significant for design {', '.join(map(str, sig))}"
        quoted.append(f"{category_title(category)} {_delta(paper['low'])} to {_delta(paper['high'])} ({which})")
    blocks.append(para(
        "Tang & Yang (2024) report, for Mistral-7B on MTEB, these deltas of designs 2–5 over design 1 (range over "
        f"the four designs): {'; '.join(quoted)}. This study's backbone ",
        Span(str(stats.study.get("backbone") or "?"), "code"),
        ", training and datasets differ from the paper's, so the comparison below is about direction only: does "
        "each design move each category the same way?"))
    if analysis is not None and any(v.comparison for v in analysis.verdicts):
        return blocks + evidence.verdict_section(analysis)
    rows = paper_agreement(stats)
    if not rows:
        if stats.reference is None:
            reason = "the reference run is missing"
        elif stats.runs[stats.reference].number != 1:
            reason = f"the reference is {stats.runs[stats.reference].label}, not design 1"
        else:
            reason = "it has no design 2-5 in a category the paper quotes"
        blocks.append(para(f"No comparison is possible for this study: {reason}."))
        return blocks
    header = [Cell("Category"), Cell("Design"), Cell("Paper Δ range", ("num",)), Cell("Our Δ", ("num",)),
              Cell("Sign"), Cell("Our p", ("num",)), Cell("Paper")]
    table_rows = []
    for r in rows:
        paper = PAPER_DELTAS[r.category]
        verdict = {True: "same as paper", False: "opposite", None: "no change"}[r.agrees]
        ours_p = (Cell(_pvalue(r.cell.p), ("num", "sig") if r.cell.significant else ("num",)) if r.cell.testable
                  else Cell(f"n/a (n = {r.cell.test.n if r.cell.test else None})", ("num", "missing")))
        table_rows.append([
            Cell(category_title(r.category)),
            Cell(_short_label(stats, r.run)),
            Cell(f"{_delta(paper['low'])} to {_delta(paper['high'])}", ("num",)),
            Cell(_delta(r.delta), _sign_tags(r.delta)),
            Cell(verdict, {True: ("agree",), False: ("disagree",), None: ()}[r.agrees]),
            ours_p,
            Cell("significant" if r.paper_significant else "not significant"),
        ])
    blocks.append(Table(header, table_rows))
    agree = [r for r in rows if r.agrees]
    by_category: dict[str, list[str]] = {}
    for r in rows:
        if r.agrees is False:
            by_category.setdefault(category_title(r.category), []).append(str(r.number))
    opposite = [f"{title} (design{'s' if len(n) > 1 else ''} {', '.join(n)})" for title, n in by_category.items()]
    testable = [r for r in rows if r.cell.testable]
    significant = [f"{_short_label(stats, r.run)} on {category_title(r.category)} "
                   f"({_delta(r.delta)}, p = {_pvalue(r.cell.p)})" for r in rows if r.cell.significant]
    paper_sig = [r for r in rows if r.paper_significant]
    reproduced = [r for r in paper_sig if r.cell.significant and r.agrees]
    lines = [f"{len(agree)} of {len(rows)} design–category deltas have the paper's sign"
             + (f"; the opposite sign: {', '.join(opposite)}." if opposite else ".")]
    lines.append(f"Significance could be assessed for {len(testable)} of {len(rows)} (the rest have fewer than "
                 f"{MIN_TESTABLE} datasets with a difference)"
                 + (f"; significant at {ALPHA}: {', '.join(significant)}." if significant
                    else f"; none is significant at {ALPHA}."))
    lines.append(f"Of the {len(paper_sig)} results the paper found significant, {len(reproduced)} "
                 f"{'is' if len(reproduced) == 1 else 'are'} significant here with the same sign.")
    blocks.append(para(" ".join(lines)))
    return blocks


def comparison_with_paper(stats: StudyStats | dict[str, Any]) -> str:
    """Markdown section: per category and design, does our delta vs design 1 have the paper's sign and was it testable.

    Generated from `stats` (as `compare` returns it, or stats.json's copy of it) and the paper's published ranges in
    `stats.PAPER_DELTAS`, so the verdicts follow the numbers.
    """
    if isinstance(stats, dict):
        stats = StudyStats.from_json(stats)
    return render_markdown(_paper_blocks(stats))


def _fmt_config(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _planned_steps(config: dict[str, Any]) -> str:
    max_steps = _get(config, "train.max_steps")
    if isinstance(max_steps, int) and max_steps > 0:
        return f"{max_steps} (max_steps)"
    epochs = _get(config, "train.num_train_epochs")
    return f"{epochs} epoch(s)" if epochs is not None else "not recorded"


def _shared_settings(results: dict[str, Any]) -> Table | Para:
    config = (results.get("study") or {}).get("config") or {}
    if not config:
        return para("The study's config was not recorded in results.json.", muted=True)

    def get(dotted: str) -> Any:
        return _get(config, dotted, "not recorded")

    lora = config.get("model", {}).get("lora") or {}
    if lora.get("enabled") is False:
        lora_text = "disabled (full fine-tuning)"
    elif lora:
        lora_text = (f"r {lora.get('r')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')} on "
                     f"{_fmt_config(lora.get('target_modules', []))}"
                     + (f" (layers {_fmt_config(lora['layers'])})" if lora.get("layers") else ""))
    else:
        lora_text = "not recorded"
    scale = get("loss.scale")
    temperature = f" (temperature {1 / scale:g})" if isinstance(scale, (int, float)) and scale else ""
    chunk = get("loss.grad_cache_chunk_size")
    pooling = config.get("model", {}).get("pooling") or {}
    sizes = ", ".join(f"{k} {pooling[k]}" for k in ("num_latents", "num_heads", "head_dim", "ff_mult", "layers")
                      if pooling.get(k) is not None)
    loss_text = (f"{get('loss.name')}, scale {scale}{temperature}, {get('loss.contrastive_batch')} contrastive batch"
                 + (f", GradCache chunks of {chunk}" if isinstance(chunk, int) else ""))
    batch_text = (f"{get('train.per_device_train_batch_size')} per device × "
                  f"{get('train.gradient_accumulation_steps')} accumulation")
    lr_text = (f"{get('train.learning_rate')}, {get('train.lr_scheduler_type')} schedule, "
               f"{get('train.warmup_steps')} warmup steps")
    precision = ("bf16" if get("train.bf16") is True else "fp16" if get("train.fp16") is True
                 else BF16_UNSET if get("train.bf16") is None else "fp32")
    rows = [
        ("Backbone", get("model.backbone")),
        ("Training steps", _planned_steps(config)),
        ("Batch", batch_text),
        ("Learning rate", lr_text),
        ("Loss", loss_text),
        ("Max length", f"{get('model.max_length')} tokens"),
        ("LoRA", lora_text),
        ("Pooling head size", f"{pooling.get('preset', 'not recorded')} preset" + (f" ({sizes})" if sizes else "")),
        ("Precision", f"train {precision}, model dtype {get('model.dtype')}, eval dtype {get('eval.dtype')}"),
        ("Seeds", f"model {get('model.seed')}, training {get('train.seed')}"),
        ("Training data", _data_text(config)),
        ("Evaluation tasks", _fmt_config(get("eval.tasks"))),
    ]
    return Table([Cell("Setting"), Cell("Value")], [[Cell(k), Cell(str(v))] for k, v in rows])


def _differences(results: dict[str, Any], stats: StudyStats) -> list[Block]:
    header = [Cell("Run"), Cell("Pooling"), Cell("Attention"), Cell("Trained")]
    rows = [[Cell(r.label), Cell(str(r.pooling or DASH)), Cell(str(r.attention or DASH)),
             Cell("yes" if r.trained else "no")] for r in (stats.runs[k] for k in stats.run_order)]
    differing = (results.get("study") or {}).get("run_differences") or []
    intro = ("The designs differ only in pooling and attention; the untrained baseline is the reference design's "
             "architecture before fine-tuning. Everything else is shared (settings as the runs recorded them):")
    if differing:
        intro = ("The trained runs do NOT share all their settings, so their differences are not due to the "
                 "design alone. The settings below are those of the first trained run.")
    return [
        Heading("What differs between the runs", 2),
        para(intro),
        *[para(Span("Warning:", "strong"), " " + d) for d in differing],
        Table(header, rows),
        Heading("Shared settings", 3),
        _shared_settings(results),
    ]


def _training(results: dict[str, Any], stats: StudyStats, figures: dict[str, Path]) -> list[Block]:
    header = [Cell("Run"), Cell("Steps", ("num",)), Cell("Training time", ("num",)), Cell("Final loss", ("num",)),
              Cell("Held-out recall@1 before → after", ("num",)), Cell("Trainable LoRA / head", ("num",)),
              Cell("Eval time", ("num",))]
    rows = []
    for key in stats.run_order:
        run = results["runs"][key]
        train = run.get("train") or {}
        eval_time = Cell(_duration(run.get("eval_seconds")), ("num",))
        if not train:
            status = "not recorded" if stats.runs[key].trained else "not trained"
            rows.append([Cell(stats.runs[key].label)] + [Cell(status, ("num", "missing"))]
                        + [Cell(DASH, ("num", "missing"))] * 4 + [eval_time])
            continue
        history = [loss for _, loss in train.get("loss_history") or [] if loss is not None]
        before = (train.get("holdout_before") or {}).get("recall@1")
        after = (train.get("holdout_after") or {}).get("recall@1")
        recall = DASH if before is None and after is None else f"{_score(before)} → {_score(after)}"
        params = train.get("trainable_parameters") or {}
        rows.append([
            Cell(stats.runs[key].label),
            Cell(str(train.get("steps", DASH)), ("num",)),
            Cell(_duration(train.get("seconds")), ("num",)),
            Cell(f"{history[-1]:.4f}" if history else DASH, ("num",)),
            Cell(recall, ("num",)),
            Cell(f"{_count(params.get('lora'))} / {_count(params.get('head'))}", ("num",)),
            eval_time,
        ])
    blocks: list[Block] = [Heading("Training", 2), Table(header, rows)]
    if "training_loss" in figures:
        blocks.append(Figure(figures["training_loss"], "training loss curves of every trained run",
                             "Training loss per logged step for every trained run."))
    else:
        blocks.append(para("No training loss was recorded.", muted=True))
    return blocks


def _with_marks(stats: StudyStats, analysis: StudyAnalysis | None) -> StudyStats:
    """A copy of `stats` whose run labels carry the undertrained mark, so every table shows it."""
    if analysis is None:
        return stats
    runs = {key: dataclasses.replace(run, label=run.label + evidence.UNDERTRAINED_MARK)
            if (conv := analysis.convergence.get(key)) is not None and conv.undertrained else run
            for key, run in stats.runs.items()}
    return dataclasses.replace(stats, runs=runs)


def build_report(results: dict[str, Any], stats: StudyStats, figures: dict[str, Path],
                 analysis: StudyAnalysis | None = None) -> list[Block]:
    """The whole report as blocks, in reading order."""
    name = (results.get("study") or {}).get("name") or "study"
    stats = _with_marks(stats, analysis)
    categories = {c: cat.tasks for c, cat in stats.categories.items()}
    interval_figures = {k: v for k, v in figures.items() if k == "deltas" and analysis is not None}
    blocks: list[Block] = [Heading(f"Pooling and attention study: {name}", 1)]
    blocks += _summary(results, stats)
    blocks += _overall(stats, figures)
    if analysis is not None:
        blocks += evidence.intervals_section(analysis, categories, interval_figures)
        blocks += evidence.seeds_section(analysis, categories)
    category_figures = {k: v for k, v in figures.items() if k not in interval_figures}
    blocks += _categories(results, stats, category_figures)
    blocks += _paper_blocks(stats, analysis=analysis)
    blocks += _differences(results, stats)
    blocks += _training(results, stats, figures)
    if analysis is not None:
        blocks += evidence.convergence_section(analysis, {k: r.label for k, r in stats.runs.items()})
    return blocks


def write_report(results: dict[str, Any] | str | Path, out_dir: str | Path, *, reference: str = "1",
                 items_dir: str | Path | None = None, analysis: StudyAnalysis | None = None) -> dict[str, Path]:
    """Write report.md, report.html, the PNG plots and stats.json into `out_dir`; return {name: path}.

    Names: 'markdown', 'html', 'stats' and one per figure written ('category_scores', 'deltas', 'training_loss';
    the last two are skipped when there is no reference or no loss history). The intervals, seeds, convergence and
    verdict sections come from `analysis` (computed here from the items under `items_dir`, by default the `items`
    folder beside a results.json path, when not given); stats.json holds it under "analysis".
    """
    if items_dir is None and isinstance(results, (str, Path)):
        items_dir = Path(results).parent / ITEMS_DIR
    results = settings_from_runs(load_results(results))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the per-run tables compare runs; with several seeds the reference design's first run stands for it there
    reference_run = reference if reference in results["runs"] else next(
        (k for k in run_order(results["runs"]) if results["runs"][k].get("group") == reference), reference)
    stats = compare(results, reference_run)
    if analysis is None:
        analysis = analyse(results, items_dir, reference=reference)
    paths: dict[str, Path] = {"stats": out / STATS_JSON}
    paths["stats"].write_text(json.dumps({**stats.to_json(), "analysis": analysis.to_json()}, indent=2, allow_nan=False) + "\n",
                              encoding="utf-8")

    figures: dict[str, Path] = {"category_scores": plots.plot_category_scores(stats, out / FIGURES["category_scores"])}
    has_intervals = any(c for cells in analysis.comparisons.values() for c in cells.values())
    deltas = (plots.plot_delta_intervals(analysis, stats, out / FIGURES["deltas"]) if has_intervals
              else plots.plot_deltas(stats, out / FIGURES["deltas"]))
    if deltas is not None:
        figures["deltas"] = deltas
    loss_name = _get((results.get("study") or {}).get("config") or {}, "loss.name", "loss")
    loss = plots.plot_training_loss(results, stats, out / FIGURES["training_loss"], loss_name=f"{loss_name} loss")
    if loss is not None:
        figures["training_loss"] = loss
    paths.update(figures)

    blocks = build_report(results, stats, figures, analysis if has_intervals or analysis.verdicts else None)
    study = results.get("study") or {}
    paths["markdown"] = out / REPORT_MD
    paths["markdown"].write_text(render_markdown(blocks), encoding="utf-8")
    paths["html"] = out / REPORT_HTML
    footer = f"Generated by poolattn {study.get('poolattn_version') or ''} from results.json.".replace("  ", " ")
    paths["html"].write_text(render_html(blocks, title=blocks[0].text, footer=footer), encoding="utf-8")
    logger.info("study report written to %s", paths["markdown"])
    return paths
