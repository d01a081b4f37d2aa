"""The study's ETA: made of the plan's parts, calibrated on the plan's own work, shown before any run finishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poolattn.cli import main
from poolattn.config import Config, merge
from poolattn.study.eta import Calibration, calibrate, estimate
from poolattn.study.plan import make_plan
from poolattn.study.run import _Eta

TASK = "PoolattnSimLex999WordSimilarity"
SUITE = Path(__file__).parents[2] / "src" / "poolattn" / "resources" / "suite" / "manifest.json"


def _config(backbone, tmp_path, **train):
    return merge(Config(), {
        "model": {"backbone": str(backbone), "max_length": 32},
        "data": {"holdout": 0},
        "train": {"max_steps": 3, "per_device_train_batch_size": 4, **train},
        "eval": {"tasks": [TASK], "batch_size": 32},
        "study": {"designs": [1, 5], "baseline": "1", "output_dir": str(tmp_path / "study")},
    })


def test_the_estimate_is_its_parts(tmp_path):
    calibration = Calibration(step_seconds={"1": 2.0, "5": 3.0}, eval_overhead_seconds=10.0, eval_texts=1000,
                              encode_seconds_per_text=0.01)
    plan = make_plan(_config("tiny", tmp_path))
    guess = estimate(plan, calibration)
    assert guess.train == {"1": 3 * 2.0, "5": 3 * 3.0}               # steps x seconds per step
    assert guess.eval == {"baseline": 20.0, "1": 20.0, "5": 20.0}    # mteb's own 10 s + 1000 texts x 10 ms
    assert guess.total == 15.0 + 60.0 and guess.minutes == 2
    doubled = estimate(make_plan(_config("tiny", tmp_path, max_steps=6)), calibration)
    assert doubled.train_total == 2 * guess.train_total and doubled.eval == guess.eval
    held = estimate(make_plan(merge(_config("tiny", tmp_path), {"data": {"holdout": 50}})), calibration)
    # the held-out check encodes 50 queries and 50 positives before and after training: 200 texts x 10 ms each
    assert held.train["1"] == pytest.approx(guess.train["1"] + 200 * 0.01)


def test_calibration_counts_the_texts_mteb_encodes(tiny_llama, tmp_path):
    plan = make_plan(_config(tiny_llama, tmp_path))
    calibration = calibrate(plan)
    counts = {t["name"]: t["counts"] for t in json.loads(SUITE.read_text())}
    assert calibration.eval_texts == counts[TASK]["texts"]  # 550 word pairs: both sides encoded
    assert set(calibration.step_seconds) == {"1", "5"} and all(s > 0 for s in calibration.step_seconds.values())
    assert calibration.encode_seconds_per_text > 0 and calibration.eval_overhead_seconds > 0


def test_dry_run_prints_the_estimated_minutes(tiny_llama, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(_config(tiny_llama, tmp_path).to_yaml())
    assert main(["study", "--config", str(config), "--dry-run"]) == 0
    values = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if line.startswith("estimated_"))
    assert int(values["estimated_minutes"]) >= 1
    train, evaluation = float(values["estimated_train_seconds"]), float(values["estimated_eval_seconds"])
    assert train > 0 and evaluation > 0 and int(values["estimated_minutes"]) == max(1, -(-(train + evaluation) // 60))
    assert not (tmp_path / "study").exists()  # a dry run writes nothing


def test_the_bar_shows_the_calibrated_estimate_before_any_run_finishes():
    assert _Eta().remaining({"train": 2, "eval": 3}) == "estimating"
    eta = _Eta({"train": 120.0, "eval": 60.0})
    assert eta.remaining({"train": 2, "eval": 3}) == "~7 min left"   # 2 x 120 s + 3 x 60 s
    eta.add("train", 300.0)                                            # a measured phase replaces the prior
    assert eta.remaining({"train": 1, "eval": 3}) == "~8 min left"


def test_a_calibrated_study_logs_its_estimate_and_runs(tiny_llama, tmp_path, caplog):
    import logging

    from poolattn.study.run import run_study

    plan = make_plan(merge(_config(tiny_llama, tmp_path), {"study": {"designs": [1]}, "train": {"max_steps": 1}}))
    with caplog.at_level(logging.INFO, logger="poolattn.study.run"):
        results = run_study(plan, progress=False, calibrate=True)
    assert any("estimated study time on this machine" in r.getMessage() for r in caplog.records)
    assert set(json.loads(results.read_text())["runs"]) == {"baseline", "1"}
