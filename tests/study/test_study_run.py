"""`run_study` reuses a run only when it was made by the same settings, data and version (training and
evaluation are stubbed: this is about which runs are redone, not about the numbers)."""

from __future__ import annotations

import json

import pytest
import yaml

from poolattn.cli import main
from poolattn.config import Config, merge
from poolattn.study import run as study_run
from poolattn.study.processes import SameProcess
from poolattn.study.plan import make_plan
from poolattn.study.run import StaleRunError, run_study


def _data(tmp_path, n=12, word="cats"):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i} {word}", "positive": f"p{i}"}) + "\n" for i in range(n)))
    return path


def _config(tmp_path, **train) -> Config:
    return merge(Config(), {
        "data": {"dataset_file_path": str(tmp_path / "train.jsonl"), "holdout": 2},
        "train": {"learning_rate": 1e-5, "max_steps": 3, **train},
        "eval": {"tasks": ["PoolattnFoldocTermRetrieval"]},
        "study": {"designs": [1, 2], "baseline": None, "output_dir": str(tmp_path / "study")},
    })


@pytest.fixture
def stubs(monkeypatch):
    """Training writes a summary (as `train` does), evaluation returns one score; both count their calls."""
    import poolattn.training.run

    calls = {"train": [], "eval": []}

    def fake_train(config, **kwargs):
        from pathlib import Path

        out = Path(config.train.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_summary.json").write_text(json.dumps({"steps": config.train.max_steps, "seconds": 1.0}))
        (out / poolattn.training.run.RUN_MARKER).write_text("{}")  # as train's prepare_output_dir marks its folder
        calls["train"].append(config.train.learning_rate)

    def fake_evaluate(run, tasks, progress, items_dir=None):
        calls["eval"].append(run.key)
        scores = {t: {"main_score": 0.5, "category": "retrieval", "main_score_name": "ndcg_at_10"} for t in tasks}
        return scores, 0.1, 512

    monkeypatch.setattr(study_run, "train", fake_train)
    monkeypatch.setattr(study_run, "_evaluate_run", fake_evaluate)
    # the command line trains and evaluates in child processes, which would not see these stubs
    monkeypatch.setattr(study_run, "ChildProcess", lambda doing: SameProcess())
    monkeypatch.setattr(study_run, "write_report", lambda results, out, **kwargs: {})
    return calls


def test_a_changed_learning_rate_stops_the_study_before_any_work(tmp_path, stubs):
    _data(tmp_path)
    run_study(make_plan(_config(tmp_path)), progress=False)
    assert stubs["train"] == [1e-5, 1e-5]
    recorded = json.loads((tmp_path / "study" / "runs" / "1" / "run.json").read_text())["identity"]
    assert recorded["config"]["train"]["learning_rate"] == 1e-5 and len(recorded["data_sha256"]) == 64

    with pytest.raises(StaleRunError) as error:
        run_study(make_plan(_config(tmp_path, learning_rate=0.5)), progress=False)
    message = str(error.value)
    assert "train.learning_rate: 1e-05 -> 0.5" in message
    assert "design 1 (eos-causal)" in message and "design 2 (latent-causal)" in message
    assert "--force" in message and "--study-dir" in message
    assert stubs["train"] == [1e-5, 1e-5] and stubs["eval"] == ["1", "2"]  # nothing was redone

    run_study(make_plan(_config(tmp_path)), progress=False)  # the same settings: both runs reused
    assert stubs["train"] == [1e-5, 1e-5] and stubs["eval"] == ["1", "2"]

    run_study(make_plan(_config(tmp_path, learning_rate=0.5)), force=True, progress=False)
    assert stubs["train"] == [1e-5, 1e-5, 0.5, 0.5]
    results = json.loads((tmp_path / "study" / "results.json").read_text())
    assert {r["identity"]["config"]["train"]["learning_rate"] for r in results["runs"].values()} == {0.5}


def test_changed_training_data_or_version_is_not_reused(tmp_path, stubs, monkeypatch):
    _data(tmp_path)
    run_study(make_plan(_config(tmp_path)), progress=False)
    _data(tmp_path, word="dogs")  # same file name, other records
    with pytest.raises(StaleRunError, match=r"data_sha256: '[0-9a-f]{64}' -> '[0-9a-f]{64}'"):
        run_study(make_plan(_config(tmp_path)), progress=False)
    _data(tmp_path)
    monkeypatch.setattr("poolattn.training.identity.__version__", "9.9.9")
    with pytest.raises(StaleRunError, match=r"poolattn_version: '\S+' -> '9.9.9'"):
        run_study(make_plan(_config(tmp_path)), progress=False)


def test_a_trained_but_unevaluated_run_is_checked_too(tmp_path, stubs):
    from poolattn.training.identity import make_identity, write_identity

    _data(tmp_path)
    plan = make_plan(_config(tmp_path, learning_rate=0.5))
    model_dir = plan.runs[0].model_dir
    model_dir.mkdir(parents=True)
    (model_dir / "train_summary.json").write_text(json.dumps({"steps": 3, "seconds": 1.0}))
    write_identity(model_dir, make_identity(make_plan(_config(tmp_path)).runs[0].config, "0" * 64))
    with pytest.raises(StaleRunError, match=r"train.learning_rate: 1e-05 -> 0.5"):
        run_study(plan, progress=False)
    assert stubs["train"] == []


def test_cli_prints_the_differences_and_the_ways_out(tmp_path, stubs, capsys):
    _data(tmp_path)
    config_file = tmp_path / "study.yaml"
    config_file.write_text(yaml.safe_dump(_config(tmp_path).to_dict()))
    assert main(["study", "--config", str(config_file), "--no-progress"]) == 0
    assert main(["study", "--config", str(config_file), "--no-progress", "--learning_rate", "0.5",
                 "--loss_scale", "5"]) != 0
    err = capsys.readouterr().err
    assert "train.learning_rate: 1e-05 -> 0.5" in err and "loss.scale: 50.0 -> 5.0" in err and "--force" in err
    assert stubs["train"] == [1e-5, 1e-5]


def test_rereporting_a_finished_study_keeps_its_wall_time(tmp_path, stubs, monkeypatch):
    """A rerun with nothing left to do only rewrites the report: started/finished stay those of the real work."""
    import poolattn.study.run as study_run

    _data(tmp_path)
    clock = iter(["2026-01-01T10:00:00+00:00", "2026-01-01T12:00:00+00:00",  # the first study
                  "2026-01-02T09:00:00+00:00",  # the re-report's own start, replaced by the study's
                  "2026-01-03T09:00:00+00:00", "2026-01-03T09:30:00+00:00"])  # the forced rerun
    monkeypatch.setattr(study_run, "_now", lambda: next(clock))
    results_file = tmp_path / "study" / "results.json"
    run_study(make_plan(_config(tmp_path)), progress=False)
    run_study(make_plan(_config(tmp_path)), progress=False)  # both runs reused: a re-report
    study = json.loads(results_file.read_text())["study"]
    assert (study["started"], study["finished"]) == ("2026-01-01T10:00:00+00:00", "2026-01-01T12:00:00+00:00")
    assert stubs["eval"] == ["1", "2"]

    run_study(make_plan(_config(tmp_path)), force=True, progress=False)  # real work again: a new wall time
    study = json.loads(results_file.read_text())["study"]
    assert (study["started"], study["finished"]) == ("2026-01-03T09:00:00+00:00", "2026-01-03T09:30:00+00:00")


def test_the_held_out_curve_and_candidates_reach_results_json(tmp_path, stubs, monkeypatch):
    import poolattn.training.run
    from pathlib import Path

    curve = [[0, 0.1, 0.2], [2, 0.4, 0.5], [3, 0.5, 0.6]]

    def fake_train(config, **kwargs):
        out = Path(config.train.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = {"steps": 3, "seconds": 1.0, "contrastive_batch": 8, "hard_negatives": 2.0,
                   "holdout": {"before": {"recall@1": 0.1}, "after": {"step": 3, "recall@1": 0.5}, "curve": curve}}
        (out / "train_summary.json").write_text(json.dumps(summary))
        (out / poolattn.training.run.RUN_MARKER).write_text("{}")

    monkeypatch.setattr(study_run, "train", fake_train)
    _data(tmp_path)
    run_study(make_plan(_config(tmp_path)), progress=False)
    train = json.loads((tmp_path / "study" / "results.json").read_text())["runs"]["1"]["train"]
    assert train["holdout_curve"] == curve
    assert (train["contrastive_batch"], train["hard_negatives"]) == (8, 2.0)
