"""The study's ETA: made of the plan's parts, calibrated on the plan's own work, shown before any run finishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poolattn.cli import main
from poolattn.config import Config, merge
from poolattn.study.eta import Calibration, EncodeRate, calibrate, estimate
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
    # a design is timed once, on its first seed: its other seeds do the same work on other batches
    seeded = calibrate(make_plan(merge(_config(tiny_llama, tmp_path), {"study": {"seeds": [1, 2]}})))
    times = seeded.step_seconds
    assert set(times) == {"1-seed1", "1-seed2", "5-seed1", "5-seed2"}
    assert times["1-seed1"] == times["1-seed2"] and times["5-seed1"] == times["5-seed2"]


def test_dry_run_prints_the_estimated_minutes(tiny_llama, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(_config(tiny_llama, tmp_path).to_yaml())
    assert main(["study", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    values = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("estimated_"))
    assert int(values["estimated_minutes"]) >= 1
    train, evaluation = float(values["estimated_train_seconds"]), float(values["estimated_eval_seconds"])
    assert train > 0 and evaluation > 0 and int(values["estimated_minutes"]) == max(1, -(-(train + evaluation) // 60))
    assert "prefix_cache=" in out and "prefix cache off: no frozen layer" in out  # LoRA on every layer of this plan
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


def test_with_the_prefix_cache_a_run_costs_the_warm_rate_when_an_earlier_run_stored_what_it_needs(tmp_path):
    calibration = Calibration(step_seconds={k: 1.0 for k in "12345"}, eval_overhead_seconds=10.0, eval_texts=1000,
                              encode_seconds_per_text=0.01, encode_seconds_per_text_warm=0.004)
    config = merge(_config("tiny", tmp_path), {"study": {"designs": [1, 2, 3, 4, 5]}, "data": {"holdout": 50},
                                               "model": {"lora": {"layers": [-1]}}})
    guess = estimate(make_plan(config), calibration)
    cold, warm = 10.0 + 1000 * 0.01, 10.0 + 1000 * 0.004
    # baseline: the first causal run; 1-3 find the causal states and the vectors the baseline kept for design 3's
    # head; 4 is the first bidirectional run; 5 finds what 4 kept
    assert guess.eval == {"baseline": cold, "1": warm, "2": warm, "3": warm, "4": cold, "5": warm}
    # held-out checks (50 pairs, before and after 3 steps): the first check is cold for the first trained run of a
    # mode, every later check finds the held-out texts stored by the first
    first_cold, all_warm = 3.0 + 100 * 0.01 + 100 * 0.004, 3.0 + 200 * 0.004
    assert guess.train == pytest.approx({"1": first_cold, "2": all_warm, "3": all_warm, "4": first_cold,
                                         "5": all_warm})
    # a multi-layer head reading other layers (here the first, frozen under any cut, and the last) than the default
    # one needs vectors no earlier run kept
    custom = merge(config, {"study": {"designs": [1, 3]}, "model": {"pooling": {"layers": [1, -1]}}})
    assert estimate(make_plan(custom), calibration).eval == {"baseline": cold, "1": warm, "3": cold}
    off = estimate(make_plan(merge(config, {"model": {"prefix_cache": "off"}})), calibration)
    assert set(off.eval.values()) == {cold} and set(off.train.values()) == {3.0 + 200 * 0.01}
    no_warm_rate = Calibration(calibration.step_seconds, 10.0, 1000, 0.01)  # the calibration found the cache off
    assert set(estimate(make_plan(config), no_warm_rate).eval.values()) == {cold}


def test_the_plan_and_the_calibration_say_whether_the_prefix_cache_is_on_and_why_not(tiny_llama, tmp_path):
    from poolattn.study.plan import describe

    upper = merge(_config(tiny_llama, tmp_path), {"model": {"lora": {"layers": [-1], "dropout": 0.0}},
                                                  "study": {"designs": [1]}})
    assert "prefix_cache=auto: the layers below the lowest LoRA layer" in describe(make_plan(upper))
    every = merge(_config(tiny_llama, tmp_path), {"study": {"designs": [1]}})  # LoRA on every layer
    assert "prefix_cache=off: LoRA adapts every layer" in describe(make_plan(every))
    switched = merge(upper, {"model": {"prefix_cache": "off"}})
    assert "prefix_cache=off (model.prefix_cache: off)" in describe(make_plan(switched))

    on = calibrate(make_plan(upper))
    assert on.prefix_cache == ("training prefix cache on (layers 0..0 of 2 run once per text); "
                               "evaluation prefix cache on (layers 0..0 of 2 run once per text)")
    assert on.encode_seconds_per_text_warm is not None and on.encode_seconds_per_text_warm > 0
    off = calibrate(make_plan(every))
    assert off.encode_seconds_per_text_warm is None
    assert "prefix cache off: no frozen layer below the first adapted one" in off.prefix_cache


def test_trained_runs_and_held_out_checks_cost_the_rates_measured_for_them(tmp_path):
    # a trained run is evaluated unmerged below float32 (Embedder.load) and its held-out checks run on its training
    # model: each has its own measured rate; the untrained baseline keeps the merged model's
    calibration = Calibration(step_seconds={"1": 2.0, "5": 3.0}, eval_overhead_seconds=10.0, eval_texts=1000,
                              encode_seconds_per_text=0.01, encode_seconds_per_text_warm=0.004,
                              trained_encode={"1": EncodeRate(0.025, 0.01), "5": EncodeRate(0.06, None)},
                              holdout={"1": EncodeRate(0.03, 0.02), "5": EncodeRate(0.05, None)})
    plan = make_plan(merge(_config("tiny", tmp_path), {"data": {"holdout": 50}, "model": {"lora": {"layers": [-1]}}}))
    guess = estimate(plan, calibration)
    # baseline: first causal run, cold at the merged rate; 1 finds the causal states (warm, unmerged); 5 is the
    # first bidirectional run (cold, unmerged, at its own layout's rate)
    assert guess.eval == pytest.approx({"baseline": 10.0 + 1000 * 0.01, "1": 10.0 + 1000 * 0.01,
                                        "5": 10.0 + 1000 * 0.06})
    # held-out: 100 texts before and 100 after 3 steps; the first check cold, the second warm where the run's
    # training model has a warm rate
    assert guess.train == pytest.approx({"1": 3 * 2.0 + 100 * 0.03 + 100 * 0.02, "5": 3 * 3.0 + 200 * 0.05})


def test_each_seed_stores_its_own_held_out_texts(tmp_path):
    # training reads only its own seed's prefix entries (PrefixCache.scope): the first held-out check of a seed's
    # first run is cold, of another design of that seed warm
    rates = {f"{d}-seed{s}": EncodeRate(0.03, 0.01) for d in (1, 2) for s in (1, 2)}
    calibration = Calibration(step_seconds={k: 0.0 for k in rates}, eval_overhead_seconds=0.0, eval_texts=0,
                              encode_seconds_per_text=0.0, holdout=rates)
    plan = make_plan(merge(_config("tiny", tmp_path), {
        "data": {"holdout": 50}, "model": {"lora": {"layers": [-1]}}, "study": {"designs": [1, 2], "seeds": [1, 2]}}))
    train = estimate(plan, calibration).train
    cold, warm = 100 * 0.03 + 100 * 0.01, 200 * 0.01
    assert train == pytest.approx({"1-seed1": cold, "1-seed2": cold, "2-seed1": warm, "2-seed2": warm})


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_calibration_times_each_design_s_held_out_check_and_a_trained_run_s_evaluation(tiny_llama, tmp_path,
                                                                                         dtype):
    config = merge(_config(tiny_llama, tmp_path), {"data": {"holdout": 8}, "model": {"dtype": dtype},
                                                   "eval": {"dtype": dtype},
                                                   "study": {"seeds": [1, 2]}})
    calibration = calibrate(make_plan(config), holdout_sample=4)
    assert set(calibration.holdout) == {"1-seed1", "1-seed2", "5-seed1", "5-seed2"}
    assert all(r.cold > 0 for r in calibration.holdout.values())
    assert calibration.holdout["1-seed1"] == calibration.holdout["1-seed2"]  # a design is timed once
    # float32 runs are evaluated merged, as the baseline is: one rate; below float32 a trained run has its own,
    # timed once per attention mode and LoRA layout
    assert (calibration.trained_encode == {}) == (dtype == "float32")
    if dtype == "bfloat16":
        rates = calibration.trained_encode
        assert set(rates) == {"1-seed1", "1-seed2", "5-seed1", "5-seed2"} and all(r.cold > 0 for r in rates.values())
        assert rates["1-seed1"] is rates["1-seed2"] and rates["5-seed1"] is rates["5-seed2"]
        assert rates["1-seed1"] is not rates["5-seed1"]  # causal and bidirectional: two layouts, two timings
    without = calibrate(make_plan(merge(config, {"data": {"holdout": 0}})))
    assert without.holdout == {}


def test_designs_whose_lora_covers_every_layer_are_planned_and_estimated_without_the_cache(tiny_llama, tmp_path):
    from poolattn.study.plan import describe

    config = merge(_config(tiny_llama, tmp_path), {
        "model": {"lora": {"layers": [-1], "dropout": 0.0, "bidirectional_layers": None}},
        "study": {"designs": [1, 4, 5]}, "data": {"holdout": 50}})
    plan = make_plan(config)
    text = describe(plan)
    assert "bidirectional_layers=all" in text
    assert "design 1 (eos-causal): auto: the layers below the lowest LoRA layer" in text
    assert ("design 4 (latent-bidirectional): off: LoRA adapts every layer (model.lora.bidirectional_layers: null)"
            in text)
    calibration = Calibration(step_seconds={k: 1.0 for k in ("1", "4", "5")}, eval_overhead_seconds=10.0,
                              eval_texts=1000, encode_seconds_per_text=0.01, encode_seconds_per_text_warm=0.004)
    guess = estimate(plan, calibration)
    # 5 would find what 4 stored, were the cache on for them: without it every bidirectional run is cold
    assert guess.eval == {"baseline": 20.0, "1": 14.0, "4": 20.0, "5": 20.0}
    assert guess.train["4"] == guess.train["5"] == pytest.approx(3.0 + 200 * 0.01)


def test_a_step_is_costed_at_the_run_s_mean_batch_counted_as_training_counts_tokens(tiny_llama, tmp_path):
    from poolattn.speed import time_train_steps, training_model
    from poolattn.study.eta import _tokens_per_step

    config = merge(_config(tiny_llama, tmp_path), {"train": {"max_steps": 4}})  # holdout 0: every record trains
    model = training_model(config)
    ran = time_train_steps(config, 4, model=model, warmup=0)  # the recipe's first 4 steps, their tokens counted
    assert _tokens_per_step(config, model) == pytest.approx(ran.tokens / 4)
    assert _tokens_per_step(config, model, limit=1) == pytest.approx(
        time_train_steps(config, 1, model=training_model(config), warmup=0).tokens)
