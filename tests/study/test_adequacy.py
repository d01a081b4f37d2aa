"""The adequacy rule on runs whose answer is known, its simulated power, and its reading of the committed study."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from poolattn.study.adequacy import (CHANCE_FRACTION, FAR_BELOW, LOSS, MIN_GAIN, RISE, RISING, RULE, adequacy,
                                     curve_rule_detection, loss_residuals, loss_rule_detection)
from poolattn.study.results import load_results

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "study-paper" / "results.json"  # the paper's head recipe


def _run(key="2", losses=None, before=0.1, after=0.6, curve=None, seed=None, contrastive=32, negatives=1,
         steps=40):
    losses = [1.0] * steps if losses is None else losses
    train = {"steps": steps, "loss_history": [[i + 1, v] for i, v in enumerate(losses)],
             "holdout_before": {"recall@1": before}, "holdout_after": {"recall@1": after},
             "contrastive_batch": contrastive, "hard_negatives": negatives}
    if curve is not None:
        train["holdout_curve"] = curve
    return {"label": f"design {key}", "number": int(key), "trained": True, "scores": {}, "train": train,
            "seed": seed}


def _read(*runs):
    results = load_results({"runs": {r["label"].split()[-1]: r for r in runs}})
    return results, results.runs


def test_loss_is_read_against_ln_of_the_candidates_per_softmax():
    # 32 records x (1 positive + 1 hard negative) = 64 candidates; chance ln 64 = 4.159
    chance = math.log(64)
    at = [0.0] * 30 + [CHANCE_FRACTION * chance + 0.01] * 10  # only the last quarter (steps 31-40) is read
    below = [9.0] * 30 + [CHANCE_FRACTION * chance - 0.01] * 10
    (results, runs) = _read(_run("2", at), _run("3", below))
    high, low = adequacy(runs["2"], results.settings), adequacy(runs["3"], results.settings)
    assert high.candidates == 64 and high.chance == pytest.approx(chance)
    assert high.loss_last_quarter == pytest.approx(CHANCE_FRACTION * chance + 0.01)
    assert high.inadequate and "of chance ln 64" in high.reasons[0]
    assert not low.inadequate and low.loss_fraction == pytest.approx(CHANCE_FRACTION - 0.01 / chance)
    three = adequacy(_read(_run("2", contrastive=16, negatives=3))[1]["2"], None)
    assert three.candidates == 64  # 16 records x (1 + 3)


def test_candidates_come_from_the_settings_when_the_run_did_not_record_them():
    config = {"train": {"per_device_train_batch_size": 32, "gradient_accumulation_steps": 2}, "data": {}}
    raw = _run("2", contrastive=None, negatives=None)
    raw["identity"] = {"config": config}
    results = load_results({"runs": {"2": raw}})
    assert adequacy(results.runs["2"], results.settings).candidates == 128  # bundled set: one hard negative
    config["data"] = {"dataset_file_path": "mine.jsonl"}  # negatives per record unknown: not assessable
    results = load_results({"runs": {"2": raw}})
    found = adequacy(results.runs["2"], results.settings)
    assert found.candidates is None and LOSS in found.not_assessed and not found.inadequate


def test_held_out_gain_absolute_and_against_the_reference():
    results, runs = _read(_run("1", before=0.05, after=0.95), _run("2", before=0.3, after=0.49),
                          _run("3", before=0.1, after=0.31))
    ref = runs["1"]  # gain 0.9
    small = adequacy(runs["2"], results.settings, ref)
    assert small.gain == pytest.approx(0.19) and small.inadequate and f"< {MIN_GAIN:.2f}" in small.reasons[0]
    far = adequacy(runs["3"], results.settings, ref)  # 0.21 clears the floor, not a quarter of 0.9
    assert far.gain == pytest.approx(0.21) and far.reference_gain == pytest.approx(0.9)
    assert far.inadequate and f"{FAR_BELOW:.0%} of the reference" in far.reasons[0]
    weaker_ref = _read(_run("1", before=0.1, after=0.8))[1]["1"]  # gain 0.7: a quarter is 0.175
    assert not adequacy(runs["3"], results.settings, weaker_ref).inadequate
    assert not adequacy(ref, results.settings, ref).inadequate


def test_a_curve_still_rising_at_the_end_is_inadequate_and_half_budget_is_read_off_it():
    rising = [[0, 0.1, 0.2], [10, 0.3, 0.4], [20, 0.45, 0.5], [30, 0.55, 0.6], [40, 0.55 + RISE + 0.01, 0.7]]
    flat = [[0, 0.1, 0.2], [10, 0.5, 0.6], [20, 0.6, 0.7], [30, 0.62, 0.7], [40, 0.62 + RISE - 0.01, 0.7]]
    results, runs = _read(_run("2", after=rising[-1][1], curve=rising), _run("3", after=flat[-1][1], curve=flat))
    up, level = adequacy(runs["2"], results.settings), adequacy(runs["3"], results.settings)
    assert up.late_rise == pytest.approx(RISE + 0.01) and up.inadequate and "still rose" in up.reasons[0]
    assert level.late_rise == pytest.approx(RISE - 0.01) and not level.inadequate and level.not_assessed == ()
    assert level.half == (20, 0.6) and level.final == (40, pytest.approx(0.62 + RISE - 0.01))
    uneven = [[0, 0.1, 0.2], [15, 0.4, 0.5], [30, 0.6, 0.7], [40, 0.6, 0.7]]  # no check at step 20: the one before
    assert adequacy(_read(_run("2", curve=uneven))[1]["2"], None).half == (15, 0.4)


def test_a_run_without_a_curve_is_not_assessed_on_it_and_says_so():
    results, runs = _read(_run("2"))
    found = adequacy(runs["2"], results.settings)
    assert found.late_rise is None and found.half is None and found.not_assessed == (RISING,)
    assert found.state == "adequate (rising not assessable)"
    assert runs["2"].train.holdout_curve == ()  # older results.json without a curve still load


def test_loss_against_the_reference_uses_the_same_steps_when_the_seeds_match():
    ref_losses = list(np.linspace(4, 1, 40))
    mine = [v + 0.5 for v in ref_losses]
    results, runs = _read(_run("1", ref_losses, seed=7), _run("2", mine, seed=7), _run("3", mine, seed=8))
    assert adequacy(runs["2"], results.settings, runs["1"]).loss_vs_reference == pytest.approx(0.5)
    assert adequacy(runs["3"], results.settings, runs["1"]).loss_vs_reference is None  # other batches
    assert adequacy(runs["1"], results.settings, runs["1"]).loss_vs_reference is None


def test_loss_rule_simulation_has_known_answers_without_noise():
    assert loss_rule_detection([0.0], CHANCE_FRACTION - 0.01) == 0.0
    assert loss_rule_detection([0.0], CHANCE_FRACTION) == 1.0
    # residuals of +-0.5 chance: the mean of one draw is below 0.6 exactly when the draw is -0.5, half the time
    assert loss_rule_detection([-0.5, 0.5], 0.7, points=1, trials=40_000) == pytest.approx(0.5, abs=0.01)


def test_curve_rule_simulation_matches_the_binomial_difference():
    from scipy.stats import norm

    sd = math.sqrt(2 * 0.7 * 0.3 / 200)  # two independent draws of 200 queries at recall 0.7
    expected = norm.sf((RISE + 0.5 / 200) / sd)  # P(after - before > RISE), continuity-corrected
    assert curve_rule_detection(0.0, 0.7, 200, trials=100_000) == pytest.approx(expected, abs=0.01)


@pytest.fixture(scope="module")
def committed():
    return load_results(COMMITTED)


def test_the_loss_rule_has_power_with_the_committed_studys_noise(committed):
    residuals = loss_residuals(list(committed.runs.values()), committed.settings)
    assert len(residuals) == 50  # five trained runs x the ten losses of their last quarter
    assert 0.15 < np.std(residuals) < 0.4  # losses jump by about a quarter of chance batch to batch
    assert loss_rule_detection(residuals, 0.80) > 0.95  # a run at 80% of chance is caught
    assert loss_rule_detection(residuals, 0.45) < 0.05  # a run at 45% of chance is rarely flagged


def test_the_committed_studys_design_3_is_inadequate_and_the_others_are_not(committed):
    reference = committed.runs["1"]
    found = {k: adequacy(r, committed.settings, reference) for k, r in committed.runs.items()}
    assert found["baseline"] is None
    three = found["3"]
    losses = [v for s, v in committed.runs["3"].train.losses if s > 30]
    assert three.loss_fraction == pytest.approx(np.mean(losses) / math.log(64)) and three.loss_fraction > 0.8
    assert three.gain == pytest.approx(0.235 - 0.095)
    assert {r.split()[0] for r in three.reasons} == {"last-quarter", "held-out"}
    assert [k for k, a in found.items() if a is not None and a.inadequate] == ["3"]
    assert all(a.not_assessed == (RISING,) for a in found.values() if a is not None)  # no curve was recorded
    assert "60% of chance" in RULE and "0.20" in RULE
