"""The study report: numbers recomputed independently, the page self-contained, the plots real images.

The fixture is a results.json as the study runner writes it: baseline + designs 1-5 over 16 tasks in 6 categories.
Classification has 7 tasks so a real Wilcoxon p appears; design 5 is design 1 + 0.05 there (every difference
positive, so exact p = 2/2^7 < 0.05); design 3 failed one classification task; design 2 scores exactly like design 1
on STS (all differences zero).
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from scipy.stats import wilcoxon

from poolattn.config import Config, merge
from poolattn.study.report import comparison_with_paper, write_report
from poolattn.study.results import load_results
from poolattn.study.stats import compare, wilcoxon_test

TASKS = {
    "PoolattnDebianSynopsisRetrieval": ("retrieval", "ndcg_at_10"),
    "PoolattnBibleVerseRetrieval": ("retrieval", "ndcg_at_10"),
    "PoolattnFoldocTermRetrieval": ("retrieval", "ndcg_at_10"),
    "PoolattnWordNetGlossReranking": ("reranking", "map_at_1000"),
    "PoolattnWordNetSupersenseClustering": ("clustering", "v_measure"),
    "PoolattnNewsgroupsClustering": ("clustering", "v_measure"),
    "PoolattnBibleParaphrasePairClassification": ("pair_classification", "max_ap"),
    "PoolattnTrecQuestionClassification": ("classification", "accuracy"),
    "PoolattnNewsgroupsClassification": ("classification", "accuracy"),
    "PoolattnSmsSpamClassification": ("classification", "accuracy"),
    "PoolattnRottenTomatoesClassification": ("classification", "accuracy"),
    "PoolattnDebianSectionClassification": ("classification", "accuracy"),
    "PoolattnFoldocDomainClassification": ("classification", "accuracy"),
    "PoolattnWordNetLexnameClassification": ("classification", "accuracy"),
    "PoolattnSimLex999WordSimilarity": ("sts", "cosine_spearman"),
    "PoolattnWordSim353WordRelatedness": ("sts", "cosine_spearman"),
}
DESIGNS = {1: ("eos", "causal"), 2: ("latent", "causal"), 3: ("multilayer", "causal"),
           4: ("latent", "bidirectional"), 5: ("multilayer", "bidirectional")}
CATEGORIES = ("retrieval", "reranking", "clustering", "pair_classification", "classification", "sts")
TITLES = ("Retrieval", "Reranking", "Clustering", "Pair classification", "Classification", "STS")
FAILED = ("3", "PoolattnFoldocDomainClassification")


HEAD_PARAMETERS = {"eos": 0, "latent": 1_180_160, "multilayer": 2_360_320}


def _train(rng: np.random.Generator, steps: int, start: float, pooling: str) -> dict:
    logged = np.arange(10, steps + 1, 10)
    loss = start * np.exp(-logged / (steps / 2.5)) + 0.4 + rng.normal(0, 0.08, len(logged))
    return {
        "steps": steps, "seconds": float(rng.uniform(600, 900)),
        "loss_history": [[int(s), round(float(v), 4)] for s, v in zip(logged, loss)],
        "holdout_before": {"recall@1": 0.31, "mrr": 0.42},
        "holdout_after": {"recall@1": round(float(rng.uniform(0.5, 0.6)), 3), "mrr": 0.66},
        "trainable_parameters": {"lora": 4_884_480, "head": HEAD_PARAMETERS[pooling]},
    }


def make_results(seed: int = 1) -> dict:
    """A results.json dict as `poolattn.study.run` writes it (values realistic, not real)."""
    rng = np.random.default_rng(seed)
    config = merge(Config(), {
        "model": {"backbone": "smollm2-135m", "max_length": 256, "lora": {"r": 8, "alpha": 16}},
        "loss": {"scale": 50.0, "grad_cache_chunk_size": 16},
        "data": {"max_records": 20000, "holdout": 256},
        "train": {"max_steps": 300, "per_device_train_batch_size": 64, "learning_rate": 2e-4, "warmup_steps": 30},
        "study": {"output_dir": "study-demo"},
    }).to_dict()
    base = {task: float(rng.uniform(0.35, 0.8)) for task in TASKS}
    runs: dict = {"baseline": {
        "label": "untrained baseline (design 1)", "design": "eos-causal", "number": None, "trained": False,
        "pooling": "eos", "attention": "causal", "train": None, "eval_seconds": 95.2,
        "scores": {t: round(v - 0.15 + float(rng.normal(0, 0.02)), 6) for t, v in base.items()},
    }}
    for number, (pooling, attention) in DESIGNS.items():
        scores = {}
        for task, value in base.items():
            category = TASKS[task][0]
            if number == 1 or (number == 2 and category == "sts"):
                scores[task] = round(value, 6)
            elif number == 5 and category == "classification":
                scores[task] = round(value + 0.05 + float(rng.normal(0, 0.004)), 6)
            else:
                scores[task] = round(value + float(rng.normal(0, 0.02)), 6)
        runs[str(number)] = {
            "label": f"design {number} ({pooling}-{attention})", "design": f"{pooling}-{attention}",
            "number": number, "trained": True, "pooling": pooling, "attention": attention,
            "scores": scores, "train": _train(rng, 300, 2.5, pooling), "eval_seconds": float(rng.uniform(80, 120)),
        }
    runs[FAILED[0]]["scores"][FAILED[1]] = None
    return {
        "study": {"name": "study-demo", "backbone": "smollm2-135m", "poolattn_version": "0.1.0",
                  "started": "2025-11-27T08:00:00+00:00", "finished": "2025-11-27T09:47:12+00:00",
                  "machine": {"cpu": "AMD EPYC 7B13", "threads": 2, "torch": "2.13.0+cpu", "device": "cpu"},
                  "config": config},
        "tasks": {t: {"category": c, "main_score_name": m} for t, (c, m) in TASKS.items()},
        "runs": runs,
    }


@pytest.fixture(scope="module")
def results() -> dict:
    return make_results()


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> dict[str, Path]:
    return write_report(results, tmp_path_factory.mktemp("report"))


# --------------------------------------------------------------------------------------------- numbers


def test_stats_match_an_independent_recomputation(results, report):
    stats = json.loads(report["stats"].read_text())
    ref = results["runs"]["1"]["scores"]
    checked_p = 0
    for category in CATEGORIES:
        tasks = [t for t, (c, _) in TASKS.items() if c == category]
        assert sorted(stats["categories"][category]["tasks"]) == sorted(tasks)
        for key, run in results["runs"].items():
            got = stats["categories"][category]["runs"][key]
            scored = [run["scores"][t] for t in tasks if run["scores"][t] is not None]
            assert got["mean"] == pytest.approx(sum(scored) / len(scored), abs=1e-12)
            if key == "1":
                assert got["delta"] is None and got["p"] is None
                continue
            pairs = [(run["scores"][t], ref[t]) for t in tasks if run["scores"][t] is not None]
            x, y = np.array(pairs).T
            assert got["n"] == len(pairs)
            assert got["delta"] == pytest.approx(float(np.mean(x - y)), abs=1e-12)
            if np.all(x == y):
                assert got["p"] is None and "zero" in got["note"]
                continue
            expected = wilcoxon(x, y)
            assert got["p"] == pytest.approx(float(expected.pvalue), rel=1e-9)
            assert got["statistic"] == pytest.approx(float(expected.statistic))
            assert got["testable"] == (len(pairs) >= 6)
            assert got["significant"] == (len(pairs) >= 6 and expected.pvalue < 0.05)
            checked_p += 1
    assert checked_p > 20


def test_planted_effects_show_up(report):
    stats = json.loads(report["stats"].read_text())
    cls = stats["categories"]["classification"]["runs"]
    assert cls["5"]["significant"] and cls["5"]["p"] == pytest.approx(2 / 2**7)
    assert cls["5"]["delta"] == pytest.approx(0.05, abs=0.005)
    assert not any(cls[k]["significant"] for k in ("2", "3", "4"))  # noise only: the negative control
    assert cls["3"]["n"] == 6 and cls["3"]["excluded"] == [FAILED[1]]
    assert "zero" in stats["categories"]["sts"]["runs"]["2"]["note"]
    small = stats["categories"]["retrieval"]["runs"]["4"]
    assert not small["testable"] and not small["significant"]
    assert small["note"] == "3 datasets: too few for a Wilcoxon test (p can not fall below 0.25)"


def _brute_force_p(diffs: np.ndarray) -> float:
    """Two-sided signed-rank p by enumerating every sign flip (ties get average ranks, zeros are dropped)."""
    from itertools import product

    from scipy.stats import rankdata

    d = diffs[diffs != 0]
    ranks = rankdata(np.abs(d))
    observed = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    hits = 0
    for signs in product((1, -1), repeat=len(d)):
        plus = ranks[np.array(signs) > 0].sum()
        hits += min(plus, ranks.sum() - plus) <= observed + 1e-9
    return hits / 2 ** len(d)


def test_wilcoxon_with_ties_and_zeros_matches_enumeration():
    ref = np.array([0.50, 0.61, 0.42, 0.70, 0.33, 0.58, 0.66, 0.45])
    run = ref + np.array([0.03, -0.01, 0.02, 0.05, 0.04, -0.02, 0.06, 0.0])  # |0.02| tied, one zero
    got = wilcoxon_test(list(run), list(ref))
    assert (got.n, got.n_nonzero, got.testable) == (8, 7, True)
    assert got.method == "permutation" and got.note == "1 zero difference dropped"
    assert got.p == pytest.approx(_brute_force_p(np.round(run - ref, 10)), abs=1e-12)
    assert wilcoxon_test([0.6] * 5, [0.5] * 5).p == pytest.approx(2 / 2**5)  # the floor for n = 5
    assert not wilcoxon_test([0.6] * 5, [0.5] * 5).testable


def test_missing_reference_leaves_means_and_drops_deltas(results):
    partial = copy.deepcopy(results)
    del partial["runs"]["1"]
    stats = compare(load_results(partial))
    assert stats.reference is None and stats.warnings
    assert all(c.runs["5"].delta is None for c in stats.categories.values())
    assert stats.categories["sts"].runs["5"].mean is not None


# ---------------------------------------------------------------------------------------------- markdown


def test_markdown_names_every_run_and_category(results, report):
    text = report["markdown"].read_text()
    for run in results["runs"].values():
        assert run["label"] in text
    for title in TITLES:
        assert f"### {title}" in text
    for heading in ("## Overall", "## What differs between the runs", "## Training", "## Comparison with the paper"):
        assert heading in text
    for name in ("category_scores.png", "deltas.png", "training_loss.png"):
        assert f"]({name})" in text


def test_markdown_explains_untestable_categories_instead_of_a_p(report):
    text = report["markdown"].read_text()
    section = text.split("### Retrieval")[1].split("###")[0]
    assert "3 datasets: too few for a Wilcoxon test (p can not fall below 0.25)" in section
    assert "n/a [1]" in section
    sts = text.split("### STS")[1].split("##")[0]
    assert "all 2 differences are zero" in sts
    cls = text.split("### Classification")[1].split("###")[0]
    assert "**0.016**" in cls  # design 5: p = 2/128, marked significant
    assert f"{FAILED[1]} is left out of the comparison of design 3" in cls


def _paper_row(text: str, category: str, design: int) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {category} | design {design} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_paper_comparison_follows_the_numbers(results):
    import dataclasses

    loaded = load_results(results)
    stats = compare(loaded)
    # design 5 is +0.05 on classification; the paper's classification deltas are negative
    row = _paper_row(comparison_with_paper(loaded, stats), "Classification", 5)
    ours = stats.categories["classification"].runs["5"].delta
    assert float(row[3].replace("−", "-")) == pytest.approx(ours, abs=5e-5)
    assert row[4] == "opposite" and row[5] == "**0.016**" and row[6] == "significant"
    cls = stats.categories["classification"]
    runs = {**cls.runs, "5": dataclasses.replace(cls.runs["5"], delta=-0.01)}
    flipped = dataclasses.replace(stats, categories={**stats.categories,
                                                     "classification": dataclasses.replace(cls, runs=runs)})
    assert _paper_row(comparison_with_paper(loaded, flipped), "Classification", 5)[4] == "same as paper"
    retrieval = _paper_row(comparison_with_paper(loaded, stats), "Retrieval", 2)
    assert retrieval[5] == "n/a (n = 3)" and retrieval[6] == "not significant"
    other_ref = dataclasses.replace(stats, reference="2")
    assert "No comparison is possible" in comparison_with_paper(loaded, other_ref)


# ------------------------------------------------------------------------------------------------- html


class _StrictParser(HTMLParser):
    """Collects attributes and fails on unbalanced tags (html.parser itself never raises)."""

    VOID: ClassVar[set[str]] = {"meta", "img", "br", "hr", "link", "wbr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_html_is_self_contained_and_well_formed(report):
    page = report["html"].read_text()
    parser = _StrictParser()
    parser.feed(page)
    parser.close()
    assert not parser.errors and not parser.stack
    assert "<script" not in page.lower()
    links = [(t, k, v) for t, k, v in parser.attrs if k in ("src", "href")]
    assert not [v for _, _, v in links if v.startswith(("http://", "https://", "//"))]
    images = [v for t, k, v in parser.attrs if t == "img" and k == "src"]
    assert len(images) == 3
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'class="num pos sig"' in page  # design 5's classification delta
    assert "text-align" in page and "<style>" in page


def test_html_escapes_text(results, tmp_path):
    hostile = copy.deepcopy(results)
    hostile["study"]["name"] = "<b>demo</b> & co"
    page = write_report(hostile, tmp_path)["html"].read_text()
    assert "&lt;b&gt;demo&lt;/b&gt; &amp; co" in page and "<b>demo</b>" not in page


def test_partial_study_still_reports(tmp_path):
    """Mid-study results: one untrained run, one design without training record, a failed task, no end time."""
    partial = {
        "study": {"name": "partial", "backbone": "tiny", "started": "2025-11-27T08:00:00+00:00", "finished": None},
        "tasks": {"A": {"category": "sts", "main_score_name": "cosine_spearman"}},
        "runs": {
            "baseline": {"label": "untrained baseline (design 1)", "number": None, "trained": False,
                         "scores": {"A": 0.4}, "train": None, "eval_seconds": None},
            "mean-bidirectional": {"label": "mean-bidirectional", "number": None, "trained": True,
                                   "scores": {"A": None}, "train": None, "eval_seconds": 3.0},
        },
    }
    paths = write_report(partial, tmp_path)
    text = paths["markdown"].read_text()
    assert "not finished" in text and "reference run '1' is not in the results" in text
    assert "failed" in text and "not recorded" in text
    assert "deltas" not in paths and "training_loss" not in paths
    assert "No comparison is possible" in text


def test_accepts_a_results_file(results, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    paths = write_report(path, tmp_path / "out")
    assert json.loads(paths["stats"].read_text())["run_order"] == ["baseline", "1", "2", "3", "4", "5"]


# ------------------------------------------------------------------------------------------------ plots


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name", ["category_scores", "deltas", "training_loss"])
def test_plots_are_real_pngs(report, name):
    width, height = _png_size(report[name])
    assert 700 <= width <= 2500 and 350 <= height <= 1500
    import matplotlib.image

    pixels = matplotlib.image.imread(report[name])
    assert pixels[..., :3].std() > 0.05  # not blank


# ------------------------------------------------------------------------------------------- screenshot


@pytest.mark.slow
def test_html_renders_in_headless_chromium(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the page is not rendered")
    shot = tmp_path / "report.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
               f"file://{report['html'].resolve()}"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert _png_size(shot) == (1280, 2000)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05
    # text in the top band (title, summary) and in the band below it (tables or figures), not one block
    assert pixels[:300].std() > 0.02 and pixels[600:1400].std() > 0.02


def _with_identities(results: dict, learning_rates: dict[str, float]) -> dict:
    """`results` whose trained runs recorded identities, each with its own learning rate."""
    import copy

    out = copy.deepcopy(results)
    for key, run in out["runs"].items():
        if run["trained"]:
            pooling, attention = DESIGNS[run["number"]]
            config = merge(Config(), {"model": {"pooling": {"name": pooling}, "attention": attention},
                                      "train": {"learning_rate": learning_rates.get(key, 1e-3),
                                                "output_dir": f"study/runs/{key}/model"}}).to_dict()
            run["identity"] = {"config": config, "data_sha256": "ab" * 32, "poolattn_version": "0.1.0"}
    return out


def test_report_settings_come_from_the_runs_not_the_command_line(results, tmp_path):
    # results.json's study config (the command line) says 2e-4; the runs recorded 1e-3
    text = write_report(_with_identities(results, {}), tmp_path)["markdown"].read_text()
    assert "| Learning rate | 0.001," in text and "0.0002" not in text
    assert "Everything else is shared" in text and "do NOT share" not in text


def test_report_of_runs_that_differ_says_how(results, tmp_path):
    text = write_report(_with_identities(results, {"2": 0.5}), tmp_path)["markdown"].read_text()
    assert "do NOT share all their settings" in text
    assert "design 2 (latent-causal) differs from design 1 (eos-causal): train.learning_rate: 0.001 -> 0.5" in text
    assert "Everything else is shared" not in text
