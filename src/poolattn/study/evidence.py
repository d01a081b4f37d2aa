"""Report sections that render a `StudyAnalysis`: intervals, seeds, adequacy and the verdict on the paper's claims.

Presentation only: every number comes from the analysis object (analysis.py), formatted here.
"""

from __future__ import annotations

from pathlib import Path

from poolattn.evaluation.items import ITEMS_DIR
from poolattn.study.adequacy import INADEQUATE_MARK, RULE, marked
from poolattn.study.analysis import ALPHA, AGREE, DISAGREE, NO_VERDICT, StudyAnalysis, significant
from poolattn.study.bootstrap import COMPONENTS, CONFIDENCE, HALF_SAMPLES, TEXTS, Comparison
from poolattn.study.fmt import DASH, pvalue, score, signed
from poolattn.study.render import Block, Bullets, Cell, Figure, Heading, Span, Table, para, render_markdown
from poolattn.study.stats import category_title


def interval_text(c: Comparison) -> str:
    return f"{signed(c.delta)} [{signed(c.ci95[0])}, {signed(c.ci95[1])}]"


def _interval_cell(c: Comparison | None) -> Cell:
    """Colored and bold by one rule, Holm p < ALPHA (the verdicts' rule); the interval printed is the 95% one."""
    if c is None:
        return Cell("n/a", ("num", "missing"))
    tags = ("num", "pos" if c.delta > 0 else "neg", "sig") if significant(c) else ("num",)
    return Cell(interval_text(c), tags)


def p_text(c: Comparison | None, *, holm: bool) -> str:
    """p or Holm p; "≤ value" when no replicate crossed zero (the p is then the replicates' floor, not measured)."""
    if c is None:
        return DASH
    return pvalue(c.p_holm if holm else c.p, bound=c.p_at_floor)


def _scheme_text(analysis: StudyAnalysis) -> str:
    by_scheme: dict[str, list[str]] = {}
    for task, scheme in analysis.schemes.items():
        by_scheme.setdefault(scheme, []).append(task)
    parts = []
    if by_scheme.get(COMPONENTS):
        parts.append(f"STS pairs that share a text ({', '.join(by_scheme[COMPONENTS])}) are resampled by connected "
                     "component (pairs joined when they share a text, directly or through other pairs), so pairs "
                     "that reuse a word move together; drawing the words instead (the vertex or pigeonhole "
                     "bootstrap) would enter a pair whose texts occur nowhere else with 3 times a pair draw's "
                     "variance, too wide where words are shared little")
    if by_scheme.get(TEXTS):
        parts.append(f"STS pairs of {', '.join(by_scheme[TEXTS])} form too few shared-text components to resample, "
                     "so their texts are drawn with replacement and each pair kept as often as both its texts were "
                     "drawn (conservative: about 1.7x too wide where pairs share little)")
    if by_scheme.get(HALF_SAMPLES):
        parts.append("clustering documents are resampled as half-samples without replacement (a delete-d "
                     "jackknife, d = n/2, each replicate's deviation scaled by sqrt(m/d) ≈ 1), because a resample "
                     "with replacement repeats documents and biases V-measure upward")
    return "; ".join(parts)


def _draws_text(analysis: StudyAnalysis) -> str:
    single = [t for t, n in analysis.probe_draws.items() if n == 1]
    several = [f"{t} ({n})" for t, n in analysis.probe_draws.items() if n > 1]
    out = []
    if several:
        out.append("the classification probe's training-sample draws are resampled too, the same for every run, "
                   f"for {', '.join(several)}")
    if single:
        out.append(f"{', '.join(single)} recorded one draw of the classification probe's training sample (mteb "
                   "draws 16 examples per label; a training split with no more than that per label is the same "
                   "sample in every draw), so their intervals carry no variance of that sample")
    return "; ".join(out)


def marked_label(analysis: StudyAnalysis, group: str) -> str:
    g = analysis.groups[group]
    return marked(g.label, g.inadequate)


def _seeds_text(analysis: StudyAnalysis, group: str) -> str:
    ref = analysis.groups[analysis.reference]
    return f"{len(analysis.groups[group].runs)} vs {len(ref.runs)}"


def intervals_section(analysis: StudyAnalysis, categories: dict[str, list[str]],
                      figures: dict[str, Path]) -> list[Block]:
    """Per design and category: Δ vs the reference with its bootstrap interval; then p and Holm's p."""
    if analysis.reference is None or not analysis.comparisons:
        return []
    if not any(c for cells in analysis.comparisons.values() for c in cells.values()):
        return [Heading("Differences with confidence intervals", 2), para(
            "No intervals: no run has items files (the per-query, per-pair and per-example values the bootstrap "
            f"resamples, read from the `{ITEMS_DIR}` folder beside results.json). The deltas below carry no "
            "uncertainty, and no verdict on the paper's claims can go beyond inconclusive.", muted=True)]
    ref_label = analysis.groups[analysis.reference].label
    seeds = {len(g.runs) for g in analysis.groups.values() if g.trained}
    seeded = max(seeds) > 1
    n_compared = sum(1 for c in analysis.comparisons.values() for v in c.values() if v)
    floor = 2 / (analysis.n_boot + 1)
    extra = "; ".join(t for t in (_scheme_text(analysis), _draws_text(analysis)) if t)
    blocks: list[Block] = [Heading("Differences with confidence intervals", 2), para(
        f"Δ [{CONFIDENCE:.0%} interval] of each design's category mean against {ref_label}, from a paired bootstrap "
        f"over the evaluated items ({analysis.n_boot} replicates, seed {analysis.bootstrap_seed}): each replicate "
        "resamples every task's items, the same ones for every run, recomputes each run's main score on them "
        "(Spearman, accuracy, AP and V-measure too), and averages the tasks of a category as the category mean does"
        + ("; before that it resamples each design's seeds with replacement, so the interval carries seed-to-seed "
           "variation as well as item sampling (a hierarchical bootstrap)" if seeded else
           "; with one seed per design the interval carries item sampling only, not seed-to-seed variation")
        + (f". Queries, pairs and examples are drawn with replacement, except: {extra}" if extra else "")
        + f". p is the two-sided bootstrap p, Holm-adjusted over all {n_compared} design × category comparisons; "
        f"a p no replicate crossed zero for is printed as \"≤\" its floor, 2/({analysis.n_boot} + 1) = {floor:.4f} "
        f"(times Holm's factor). One rule decides whether a difference counts, here and in the verdicts: Holm p < "
        f"{ALPHA} (bold, highlighted, colored by its sign); the interval printed beside it is the unadjusted "
        f"{CONFIDENCE:.0%} one, so an interval can exclude 0 while its Holm p does not count. "
        f"Designs marked{INADEQUATE_MARK} have a run the adequacy rule calls inadequate; they get no verdict "
        "(see Adequacy).",
        muted=True)]
    header = [Cell("Design"), Cell("Seeds (vs ref.)", ("num",))] + [Cell(category_title(c), ("num",))
                                                                       for c in categories]
    rows, p_rows = [], []
    for group, cells in analysis.comparisons.items():
        label = marked_label(analysis, group)
        rows.append([Cell(label), Cell(_seeds_text(analysis, group), ("num",))]
                    + [_interval_cell(cells.get(c)) for c in categories])
        p_rows.append([Cell(label)] + [Cell(DASH if cells.get(c) is None else
                                            f"{p_text(cells[c], holm=False)} / {p_text(cells[c], holm=True)}",
                                            ("num", "sig") if significant(cells.get(c)) else ("num",))
                                       for c in categories])
    blocks.append(Table(header, rows))
    blocks.append(Table([Cell("p / Holm p")] + [Cell(category_title(c), ("num",)) for c in categories], p_rows))
    if "deltas" in figures:
        blocks.append(Figure(figures["deltas"], "category deltas with their confidence intervals as error bars",
                             f"Δ of each design's category mean vs {ref_label}; error bars: the {CONFIDENCE:.0%} "
                             f"bootstrap interval; * Holm p < {ALPHA}."))
    missing = [f"{run}: {', '.join(tasks)}" for run, tasks in analysis.missing_items.items()]
    if missing:
        blocks.append(para("Scored without an items file, so left out of the intervals: " + "; ".join(missing) + ".",
                           muted=True))
    task_rows = []
    for category, tasks in categories.items():
        for task in tasks:
            task_rows.append([Cell(task, ("task",)), Cell(category_title(category))]
                             + [_interval_cell(analysis.task_comparisons[g].get(task)) for g in analysis.comparisons])
    blocks.append(Heading("Per task", 3))
    blocks.append(Table([Cell("Task"), Cell("Category")] + [Cell(marked_label(analysis, g), ("num",))
                                                          for g in analysis.comparisons], task_rows))
    return blocks


def seeds_section(analysis: StudyAnalysis, categories: dict[str, list[str]]) -> list[Block]:
    """Mean ± standard deviation across seeds of each category mean, for studies with several seeds."""
    if all(len(g.runs) < 2 for g in analysis.groups.values()):
        return []
    rows = []
    for key, group in analysis.groups.items():
        cells = []
        for category in categories:
            mean, spread = group.category_means.get(category, (None, None))
            text = DASH if mean is None else f"{mean:.3f}" + ("" if spread is None else f" ± {spread:.3f}")
            cells.append(Cell(text, ("num",)))
        seeds = ", ".join(DASH if s is None else str(s) for s in group.seeds)
        rows.append([Cell(marked_label(analysis, key)), Cell(seeds, ("num",))] + cells)
    return [Heading("Across seeds", 3),
            para("Each category mean, averaged over a design's seeds ± its standard deviation across them.",
                 muted=True),
            Table([Cell("Design"), Cell("Seeds", ("num",))] + [Cell(category_title(c), ("num",)) for c in categories],
                  rows)]


def _budget_text(a) -> str:
    if a.half is None or a.final is None:
        return DASH
    return f"{score(a.half[1])} (step {a.half[0]}) / {score(a.final[1])} (step {a.final[0]})"


def adequacy_section(analysis: StudyAnalysis, labels: dict[str, str]) -> list[Block]:
    """Per trained run: the loss against chance and the reference, the held-out gain and curve, the rule's reading."""
    rows = []
    for key, a in analysis.adequacy.items():
        if a is None:
            continue
        chance = DASH if a.chance is None else f"ln {a.candidates} = {a.chance:.2f}"
        loss = DASH if a.loss_last_quarter is None else (
            f"{a.loss_last_quarter:.2f}" + ("" if a.loss_fraction is None else f" ({a.loss_fraction:.0%})"))
        gain = DASH if a.gain is None else signed(a.gain)
        rows.append([Cell(labels.get(key, key)), Cell(chance, ("num",)), Cell(loss, ("num",)),
                     Cell(signed(a.loss_vs_reference, 2), ("num",)), Cell(gain, ("num",)),
                     Cell(_budget_text(a), ("num",)), Cell(signed(a.late_rise), ("num",)),
                     Cell(a.state, ("disagree",) if a.inadequate else ())])
    if not rows:
        return []
    return [Heading("Adequacy", 3), para(
        f"Rule: {RULE}. Chance is the loss of uninformative logits, ln of the candidates in one softmax (contrastive "
        "batch × (1 positive + hard negatives)). Loss vs reference: the mean difference from the reference design's "
        "loss on the same steps of the last quarter, which saw the same batches (same training seed). Held-out "
        "recall@1 at half / all steps: from the curve of the held-out check along training.", muted=True),
        Table([Cell("Run"), Cell("Chance", ("num",)), Cell("Last-quarter loss (of chance)", ("num",)),
               Cell("Loss vs reference", ("num",)), Cell("Held-out recall@1 gain", ("num",)),
               Cell("Held-out recall@1 at half / all steps", ("num",)), Cell("Rise, last quarter", ("num",)),
               Cell("Reading")], rows)]


def verdict_section(analysis: StudyAnalysis) -> list[Block]:
    """The paper's claims (designs 2-5 vs design 1) against this study's intervals."""
    if not analysis.verdicts:
        return []
    rows = []
    for v in analysis.verdicts:
        paper = f"{signed(v.claim.low)} to {signed(v.claim.high)}"
        direction = "higher" if v.paper_sign > 0 else "lower"
        this_design = f"{direction}, {'significant' if v.paper_significant else 'not significant'}"
        c = v.comparison
        tag = {AGREE: ("agree",), DISAGREE: ("disagree",)}.get(v.verdict, ())
        rows.append([Cell(category_title(v.category)), Cell(marked(f"design {v.number}",
                                                                   analysis.groups[v.group].inadequate)),
            Cell(paper, ("num",)), Cell(this_design), _interval_cell(c), Cell(p_text(c, holm=True), ("num",)),
            Cell(DASH if c is None else str(c.n_seeds), ("num",)), Cell(v.verdict, tag), Cell(v.reason)])
    counts = {name: sum(v.verdict == name for v in analysis.verdicts)
              for name in (AGREE, DISAGREE, "inconclusive", NO_VERDICT)}
    return [
        Heading("Verdict on the paper's claims", 3),
        para(f"Each claim is design N against design 1 on a category. The paper gives, per category, the range of "
             "designs 2-5's deltas (on one side of 0, so each design's own delta has the range's sign) and which "
             "designs' differences were significant; the column \"Paper, this design\" reads both for the design. "
             f"agree / disagree only when this study's Holm-adjusted p < {ALPHA} (the rule that bolds the interval "
             "tables), with Δ on the paper's side / the other side; inconclusive otherwise, even where the "
             f"unadjusted {CONFIDENCE:.0%} interval excludes 0; \"{NO_VERDICT}\" when a run of the design or of the "
             "reference is inadequate (see Adequacy), whatever its p. An agreement where the paper's own "
             "difference was not significant matches a direction the paper did not establish. The Seeds column says "
             "how many seeds of the design each verdict rests on.", muted=True),
        Table([Cell("Category"), Cell("Design"), Cell("Paper Δ range (designs 2-5)", ("num",)),
               Cell("Paper, this design"), Cell("Our Δ [95% CI]", ("num",)), Cell("Holm p", ("num",)),
               Cell("Seeds", ("num",)), Cell("Verdict"), Cell("Why")], rows),
        Bullets([[Span(f"{name}: {count}")] for name, count in counts.items()], muted=True),
    ]


def verdict_markdown(analysis: StudyAnalysis) -> str:
    """The verdict table as Markdown, for pasting into a README: generated, so it follows the intervals."""
    return render_markdown(verdict_section(analysis))
