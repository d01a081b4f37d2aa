"""The study analysis and its report sections on a constructed study whose verdicts are known in advance.

Design 1 is the reference. On retrieval, design 2 is every query +0.1 (the paper's side: agree), design 3 is +0.1
too but its training loss stayed at chance (inadequate: no verdict, where its interval alone would agree), design 4
is -0.1 (disagree), design 5 equals design 1 (inconclusive). On STS and classification all designs equal design 1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from poolattn.evaluation.items import TaskItems, write
from poolattn.study.analysis import AGREE, DISAGREE, INCONCLUSIVE, NO_VERDICT, analyse
from poolattn.study.bootstrap import holm
from poolattn.study.report import write_report
from poolattn.study.results import load_results

TASKS = {"Ret": "retrieval", "Sim": "sts", "Cls": "classification"}
SHIFT = {1: 0.0, 2: 0.1, 3: 0.1, 4: -0.1, 5: 0.0}


def _items(number: int) -> dict[str, dict]:
    rng = np.random.default_rng(0)  # the same base items for every design
    base = rng.random(60) * 0.7 + 0.15
    gold, predicted = rng.random(40), rng.random(40)
    labels = rng.integers(0, 3, 30)
    guesses = rng.integers(0, 3, (30, 2))
    return {
        "Ret": {"task": "Ret", "category": "retrieval", "metric": "ndcg_at_10",
                "items": [{"id": f"q{i}", "score": float(s + SHIFT[number])} for i, s in enumerate(base)]},
        "Sim": {"task": "Sim", "category": "sts", "metric": "cosine_spearman",
                "items": [{"id": str(i), "gold": float(g), "predicted": float(p)}
                          for i, (g, p) in enumerate(zip(gold, predicted))]},
        "Cls": {"task": "Cls", "category": "classification", "metric": "accuracy",
                "items": [{"id": str(i), "gold": int(g), "predicted": [int(p) for p in row]}
                          for i, (g, row) in enumerate(zip(labels, guesses))]},
    }


def _loss(at_chance: bool) -> list[list[float]]:
    steps = np.arange(1, 41)
    loss = np.full(40, 4.1) if at_chance else 1.5 + 3 * np.exp(-steps / 4)  # chance: ln 64 = 4.16
    return [[int(s), float(v)] for s, v in zip(steps, loss)]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    runs = {}
    for number in SHIFT:
        key = str(number)
        scores = {}
        for task, content in _items(number).items():
            content["main_score"] = TaskItems.from_json(content).score()
            write(content, out / "items" / key)
            scores[task] = content["main_score"]
        runs[key] = {"label": f"design {number}", "number": number, "trained": True, "scores": scores,
                     "train": {"steps": 40, "loss_history": _loss(at_chance=number == 3),
                               "holdout_before": {"recall@1": 0.1}, "holdout_after": {"recall@1": 0.6},
                               "contrastive_batch": 32, "hard_negatives": 1}}
    results = {"study": {"name": "constructed"}, "runs": runs,
               "tasks": {t: {"category": c, "main_score_name": "x"} for t, c in TASKS.items()}}
    (out / "results.json").write_text(json.dumps(results))
    return out, results


def test_verdicts_follow_the_intervals_and_an_inadequate_run_gives_none(study):
    out, _ = study
    analysis = analyse(load_results(out / "results.json"), n_boot=500)
    retrieval = {v.number: v for v in analysis.verdicts if v.category == "retrieval"}
    assert {n: v.verdict for n, v in retrieval.items()} == {2: AGREE, 3: NO_VERDICT, 4: DISAGREE, 5: INCONCLUSIVE}
    assert retrieval[2].comparison.delta == pytest.approx(0.1, abs=1e-12)
    assert retrieval[2].comparison.ci95 == pytest.approx((0.1, 0.1), abs=1e-12)
    # design 3's interval is design 2's, on the paper's side: it would agree, but its run never left chance
    assert retrieval[3].comparison.ci95 == pytest.approx((0.1, 0.1), abs=1e-12)
    assert "design 3 is inadequate: last-quarter loss 4.10 is 99% of chance ln 64" in retrieval[3].reason
    assert all(v.verdict == NO_VERDICT for v in analysis.verdicts if v.number == 3)
    assert all(v.verdict == INCONCLUSIVE for v in analysis.verdicts if v.category != "retrieval" and v.number != 3)
    assert {v.category for v in analysis.verdicts} == {"retrieval", "sts", "classification"}
    assert analysis.groups["3"].inadequate and not analysis.groups["4"].inadequate


def test_an_inadequate_reference_leaves_no_verdict_at_all(study, tmp_path):
    _, results = study
    broken = json.loads(json.dumps(results))
    broken["runs"]["1"]["train"]["holdout_after"] = {"recall@1": 0.15}  # gain 0.05 < 0.20
    analysis = analyse(load_results(broken), tmp_path / "nowhere", n_boot=100)
    assert analysis.verdicts and all(v.verdict == NO_VERDICT for v in analysis.verdicts)
    assert all("design 1 is inadequate: held-out recall@1 gain +0.050" in v.reason for v in analysis.verdicts)


def test_holm_runs_over_every_design_and_category(study):
    out, _ = study
    analysis = analyse(load_results(out / "results.json"), n_boot=500)
    cells = [(g, c) for g, row in analysis.comparisons.items() for c, cell in row.items() if cell is not None]
    assert len(cells) == 4 * 3
    expected = holm([analysis.comparisons[g][c].p for g, c in cells])
    assert [analysis.comparisons[g][c].p_holm for g, c in cells] == pytest.approx(expected)
    assert analysis.comparisons["2"]["retrieval"].p_holm == pytest.approx(12 * 2 / 501)
    fields = analysis.results_fields()
    assert fields["reference"] == "1"
    assert fields["comparisons"]["4"]["retrieval"]["ci95"] == pytest.approx([-0.1, -0.1], abs=1e-12)
    assert fields["comparisons"]["2"]["sts"]["delta"] == 0 and fields["comparisons"]["2"]["sts"]["n_items"] == 40


def test_report_marks_inadequate_designs_and_prints_the_verdicts(study, tmp_path):
    out, _ = study
    paths = write_report(out / "results.json", tmp_path)
    text = paths["markdown"].read_text()
    overall = text.split("## Overall")[1].split("##")[0]
    assert "design 3 (inadequate)" in overall and "design 4 (inadequate)" not in overall
    assert "| Retrieval | design 3 (inadequate) |" in text and "| no verdict: inadequate |" in text
    per_task = text.split("### Per task")[1].split("##")[0]
    assert "design 3 (inadequate)" in per_task
    assert "| Retrieval | design 4 |" in text and "| disagree |" in text
    assert "Rule: a run is inadequate" in text and "inadequate: last-quarter loss 4.10 is 99% of chance" in text
    assert "+0.100 [+0.100, +0.100]" in text
    assert "error bars" in text
    from tests.study.test_report import _png_size

    assert _png_size(paths["deltas"])[0] >= 700
    stats = json.loads(paths["stats"].read_text())
    assert stats["analysis"]["adequacy"]["3"]["inadequate"] is True
    assert stats["analysis"]["adequacy"]["3"]["loss_fraction_of_chance"] == pytest.approx(4.1 / np.log(64))
    from tests.study.test_report import _StrictParser

    page = paths["html"].read_text()
    parser = _StrictParser()
    parser.feed(page)
    parser.close()
    assert not parser.errors and not parser.stack
    assert 'alt="category deltas with their confidence intervals as error bars"' in page
    assert 'class="num pos sig">+0.100 [+0.100, +0.100]' in page


def test_replicates_keep_the_holm_floor_below_alpha():
    from poolattn.study.analysis import replicates_for

    assert replicates_for(24) == 2000  # 4 designs x 6 categories: the default suffices (floor 24 x 2/2001 = 0.024)
    b = replicates_for(100)
    assert b == 8000 and 100 * 2 / (b + 1) <= 0.025


def test_verdict_markdown_is_the_reports_table(study, tmp_path):
    from poolattn.study.evidence import verdict_markdown

    out, _ = study
    analysis = analyse(load_results(out / "results.json"), n_boot=200)
    table = verdict_markdown(analysis)
    assert table.startswith("### Verdict on the paper's claims")
    paths = write_report(out / "results.json", tmp_path, analysis=analysis)
    assert table.strip() in paths["markdown"].read_text()


def test_no_items_leaves_no_intervals_and_says_so(study, tmp_path):
    _, results = study
    analysis = analyse(load_results(results), tmp_path / "nowhere", n_boot=100)
    assert all(cell is None for row in analysis.comparisons.values() for cell in row.values())
    assert set(analysis.missing_items) == {"1", "2", "3", "4", "5"}
    assert all(v.verdict == INCONCLUSIVE and "no item evidence" in v.reason for v in analysis.verdicts
               if v.number != 3)
    assert all(v.verdict == NO_VERDICT for v in analysis.verdicts if v.number == 3)


def test_holds_at_half_budget_compares_the_held_out_ordering_at_both_budgets(study, tmp_path):
    _, results = study
    curves = {"1": [[0, 0.1, 0.2], [20, 0.5, 0.6], [30, 0.58, 0.6], [40, 0.6, 0.7]],
              "2": [[0, 0.1, 0.2], [20, 0.4, 0.5], [30, 0.62, 0.6], [40, 0.65, 0.7]],  # behind at half, ahead at the end
              "4": [[0, 0.1, 0.2], [20, 0.45, 0.5], [30, 0.52, 0.6], [40, 0.55, 0.6]]}  # behind at both
    with_curves = json.loads(json.dumps(results))
    for key, curve in curves.items():
        with_curves["runs"][key]["train"].update(holdout_curve=curve, holdout_after={"recall@1": curve[-1][1]})
    analysis = analyse(load_results(with_curves), tmp_path / "nowhere", n_boot=100)
    budget = analysis.results_fields()["holdout_budget"]
    assert budget["2"] == {"inadequate_runs": [], "holdout_recall_final": 0.65, "holdout_recall_half": 0.4,
                           "holds_at_half_budget": False}
    assert budget["4"]["holds_at_half_budget"] is True
    assert budget["5"]["holds_at_half_budget"] is None and budget["3"]["inadequate_runs"] == ["3"]  # no curve
    verdicts = analysis.to_json()["verdicts"]
    assert {v["holds_at_half_budget"] for v in verdicts if v["number"] == 2} == {False}


def _comparison(ci95, p, p_holm, delta=None, n_replicates=2000):
    from poolattn.study.bootstrap import Comparison

    return Comparison(delta=sum(ci95) / 2 if delta is None else delta, ci95=ci95, p=p, n_items=100, n_tasks=1,
                      n_seeds=1, n_reference_seeds=1, n_replicates=n_replicates, p_holm=p_holm)


def test_an_interval_that_excludes_zero_without_holm_is_neither_a_verdict_nor_bold():
    """The case the two rules would split on: unadjusted 95% interval above 0, Holm p 0.372."""
    from poolattn.study.analysis import Group, _verdict
    from poolattn.study.evidence import _interval_cell
    from poolattn.study.paper import PAPER_DELTAS

    group = Group("2", "design 2", 2, True, ("2",), (None,), {})
    reference = Group("1", "design 1", 1, True, ("1",), (None,), {})
    claim = PAPER_DELTAS["classification"]  # the paper's sign is negative: this delta is on the other side
    split = _comparison((0.002, 0.061), p=0.031, p_holm=0.372)
    assert split.excludes_zero
    got = _verdict(claim, group, reference, split, {}, {})
    assert got.verdict == INCONCLUSIVE and "Holm p" in got.reason
    assert "sig" not in _interval_cell(split).tags and "pos" not in _interval_cell(split).tags
    counted = _comparison((0.002, 0.061), p=0.001, p_holm=0.024)
    assert _verdict(claim, group, reference, counted, {}, {}).verdict == DISAGREE
    assert {"sig", "pos"} <= set(_interval_cell(counted).tags)


def test_a_p_at_the_replicate_floor_prints_as_a_bound():
    from poolattn.study.evidence import p_text

    floor = 2 / 2001
    at_floor = _comparison((0.1, 0.2), p=floor, p_holm=24 * floor)
    assert p_text(at_floor, holm=True) == "≤ 0.024" and p_text(at_floor, holm=False) == "≤ 0.0010"
    measured = _comparison((0.1, 0.2), p=0.004, p_holm=0.048)
    assert p_text(measured, holm=True) == "0.048" and p_text(measured, holm=False) == "0.004"


def test_verdicts_say_the_papers_sign_and_significance_for_each_design(study, tmp_path):
    out, _ = study
    analysis = analyse(load_results(out / "results.json"), n_boot=500)
    retrieval = {v.number: v for v in analysis.verdicts if v.category == "retrieval"}
    assert retrieval[5].paper_significant and not retrieval[2].paper_significant
    assert all(v.paper_sign == (1 if v.claim.low > 0 else -1) for v in analysis.verdicts)
    from poolattn.study.evidence import verdict_markdown

    table = verdict_markdown(analysis)
    assert "| Retrieval | design 5 | +0.010 to +0.023 | higher, significant |" in table
    assert "| Retrieval | design 2 | +0.010 to +0.023 | higher, not significant |" in table
