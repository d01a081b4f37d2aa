"""The study report: numbers recomputed independently, the page self-contained, the plots real images.

The fixture is a results.json as the study runner writes it: baseline + designs 1-5 over 16 tasks in 6 categories,
without items files, so it also checks the report's one path for such results: the score tables in full, no
intervals, and every verdict inconclusive (tests/study/test_analysis.py covers the intervals from items). Design 5
is design 1 + 0.05 on classification's 7 tasks; design 3 failed one classification task; design 2 scores exactly
like design 1 on STS (all differences zero).
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

from poolattn.config import Config, merge
from poolattn.study.report import write_report
from poolattn.study.results import load_results
from poolattn.study.stats import compare

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
        "holdout_before": {"recall@1": 0.21, "mrr": 0.32},
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
    checked = 0
    for category in CATEGORIES:
        tasks = [t for t, (c, _) in TASKS.items() if c == category]
        assert sorted(stats["categories"][category]["tasks"]) == sorted(tasks)
        for key, run in results["runs"].items():
            got = stats["categories"][category]["runs"][key]
            scored = [run["scores"][t] for t in tasks if run["scores"][t] is not None]
            assert got["mean"] == pytest.approx(sum(scored) / len(scored), abs=1e-12)
            assert got["n_scored"] == len(scored)
            if key == "1":
                assert got["delta"] is None
                continue
            pairs = [(run["scores"][t], ref[t]) for t in tasks if run["scores"][t] is not None]
            x, y = np.array(pairs).T
            assert got["delta"] == pytest.approx(float(np.mean(x - y)), abs=1e-12)
            checked += 1
    assert checked == len(CATEGORIES) * (len(results["runs"]) - 1)


def test_planted_effects_show_up(report):
    stats = json.loads(report["stats"].read_text())
    cls = stats["categories"]["classification"]["runs"]
    assert cls["5"]["delta"] == pytest.approx(0.05, abs=0.005)
    assert all(abs(cls[k]["delta"]) < 0.03 for k in ("2", "3", "4"))  # noise only: the negative control
    assert cls["3"]["n_scored"] == 6 and cls["3"]["excluded"] == [FAILED[1]] and cls["3"]["missing"] == [FAILED[1]]
    assert stats["categories"]["sts"]["runs"]["2"]["delta"] == 0


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
    for heading in ("## Overall", "## Differences with confidence intervals", "## What differs between the runs",
                    "## Training", "## Comparison with the paper", "### Adequacy"):
        assert heading in text
    for name in ("category_scores.png", "training_loss.png"):
        assert f"]({name})" in text


def test_results_without_items_are_reported_without_intervals(results, report):
    text = report["markdown"].read_text()
    assert "No intervals: no run has items files" in text and "`items` folder" in text
    assert " [" not in text.split("## Differences with confidence intervals")[1].split("## Per category")[0]
    assert "deltas" not in report and "](deltas.png)" not in text
    # the verdict table is there, every claim inconclusive for want of items
    verdicts = [line for line in text.splitlines() if line.startswith(("| STS |", "| Retrieval |",
                                                                       "| Classification |", "| Clustering |"))]
    assert len(verdicts) == 4 * 4
    assert all("| inconclusive | no item evidence to build an interval |" in line for line in verdicts)
    cls = text.split("### Classification")[1].split("###")[0]
    assert f"{FAILED[1]} is left out of the comparison of design 3" in cls
    assert "Wilcoxon" not in text


def test_without_a_reference_design_1_there_is_no_verdict(results, tmp_path):
    text = write_report(results, tmp_path, reference="2")["markdown"].read_text()
    assert "No comparison is possible for this study: the reference is design 2 (latent-causal), not design 1." in text
    assert "Verdict on the paper's claims" not in text


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
    assert len(images) == 2  # no items, so no interval plot
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    delta = json.loads(report["stats"].read_text())["categories"]["classification"]["runs"]["5"]["delta"]
    assert f'class="num pos">+{delta:.4f}<' in page  # design 5's classification delta, green
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


@pytest.mark.parametrize("name", ["category_scores", "training_loss"])
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
