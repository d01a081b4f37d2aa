"""A whole study on a tiny random model with two seeds: run names carry the seed, items are saved for every run and
task, and results.json's comparisons pool both seeds of each design."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poolattn.config import Config, ConfigError, merge
from poolattn.evaluation.items import TaskItems
from poolattn.study.plan import describe, make_plan
from poolattn.study.run import run_study

TASKS = {"PoolattnWordSim353WordRelatedness": "sts", "PoolattnFoldocTermRetrieval": "retrieval"}


def _data(tmp_path, n=24):
    rows = [{"query": f"question {i} about {['cats', 'ships', 'songs'][i % 3]}", "positive": f"answer {i} text",
             "negative": f"other thing {i + 1}"} for i in range(n)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tiny_llama, tmp_path) -> Config:
    return merge(Config(), {
        "model": {"backbone": str(tiny_llama), "max_length": 160, "pooling": {"num_latents": 4},
                  "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "data": {"dataset_file_path": str(_data(tmp_path)), "holdout": 0},
        "loss": {"scale": 20.0},
        "train": {"per_device_train_batch_size": 4, "max_steps": 3, "logging_steps": 1, "learning_rate": 1e-2,
                  "save_steps": 100, "disable_tqdm": True},
        "eval": {"tasks": list(TASKS), "batch_size": 64, "dtype": "float32"},
        "study": {"designs": [1, 2], "baseline": None, "seeds": [1, 2], "output_dir": str(tmp_path / "study")},
    })


def test_seeds_name_the_runs_and_set_both_seeds(tmp_path):
    plan = make_plan(merge(Config(), {"study": {"designs": [1, 5], "seeds": [7, 8], "output_dir": str(tmp_path)}}))
    assert [r.key for r in plan.runs] == ["baseline", "1-seed7", "1-seed8", "5-seed7", "5-seed8"]
    assert [r.group_key for r in plan.runs] == ["baseline", "1", "1", "5", "5"]
    assert [(r.config.model.seed, r.config.train.seed) for r in plan.runs[1:]] == [(7, 7), (8, 8)] * 2
    assert plan.runs[2].folder == tmp_path / "runs" / "1-seed8"
    # each seeded run is still its design: pooling and attention survive setting the seeds
    assert [(r.config.model.pooling.name, r.config.model.attention) for r in plan.runs] == [
        ("eos", "causal"), ("eos", "causal"), ("eos", "causal"),
        ("multilayer", "bidirectional"), ("multilayer", "bidirectional")]
    assert "seeds: [7, 8]" in describe(plan)
    with pytest.raises(ConfigError, match="twice"):
        merge(Config(), {"study": {"seeds": [1, 1]}})


@pytest.fixture(scope="module")
def study(tiny_llama, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("seeds")
    results = run_study(make_plan(_config(tiny_llama, tmp_path)), progress=False)
    return results.parent, json.loads(results.read_text())


@pytest.mark.slow  # a tiny model, but a whole study: four trainings and eight evaluations (about a CPU minute)
def test_two_seeds_train_distinct_runs_with_items_for_every_task(study):
    out, results = study
    assert sorted(results["runs"]) == ["1-seed1", "1-seed2", "2-seed1", "2-seed2"]
    assert {r["group"] for r in results["runs"].values()} == {"1", "2"}
    histories = {k: r["train"]["loss_history"] for k, r in results["runs"].items()}
    assert histories["2-seed1"] != histories["2-seed2"]  # another seed, another run
    for key, run in results["runs"].items():
        for task in TASKS:
            items = TaskItems.load(out / "items" / key / f"{task}.json")
            assert items.score() == pytest.approx(run["scores"][task], abs=5e-6), (key, task)


@pytest.mark.slow
def test_comparisons_pool_the_seeds(study):
    out, results = study
    assert results["reference"] == "1" and set(results["comparisons"]) == {"2"}
    runs = results["runs"]
    for category in ("sts", "retrieval"):
        cell = results["comparisons"]["2"][category]
        task = next(t for t, c in TASKS.items() if c == category)
        expected = np.mean([runs[f"2-seed{s}"]["scores"][task] for s in (1, 2)]) - np.mean(
            [runs[f"1-seed{s}"]["scores"][task] for s in (1, 2)])
        assert cell["delta"] == pytest.approx(expected, abs=1e-5)
        assert cell["ci95"][0] <= cell["delta"] <= cell["ci95"][1]
        assert cell["n_seeds"] == 2 and cell["n_reference_seeds"] == 2 and 0 < cell["p"] <= 1
        assert cell["p_holm"] >= cell["p"]
    report = (out / "report.md").read_text()
    assert "### Across seeds" in report and "## Differences with confidence intervals" in report
    assert "resamples each design's seeds" in report


@pytest.mark.slow
def test_the_score_tables_compare_with_the_reference_designs_mean_over_its_seeds(study):
    from poolattn.study.results import load_results
    from poolattn.study.stats import compare

    out, results = study
    stats = compare(load_results(results), "1-seed1")
    assert stats.reference_runs == ("1-seed1", "1-seed2")
    runs = results["runs"]
    for key in ("2-seed1", "2-seed2"):
        expected = np.mean([runs[key]["scores"][t] - np.mean([runs[f"1-seed{s}"]["scores"][t] for s in (1, 2)])
                            for t in TASKS])
        assert stats.overall[key].delta == pytest.approx(expected, abs=1e-9)
    assert stats.overall["1-seed1"].delta is None and stats.overall["1-seed2"].delta is None
    report = (out / "report.md").read_text()
    assert "Deltas and tests are against design 1 (eos-causal) (the mean of its 2 seeds)." in report
