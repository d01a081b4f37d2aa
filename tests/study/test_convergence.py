"""The convergence rule on curves whose answer is known, and its slope interval against scipy's regression."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import linregress, t

from poolattn.study.convergence import MIN_DROP, MIN_LEARNED, RULE, convergence


def _history(steps, loss):
    return [[int(s), float(v)] for s, v in zip(steps, loss)]


def test_a_straight_fall_is_still_falling_with_the_exact_slope():
    steps = np.arange(1, 101)
    got = convergence(_history(steps, 5 - 0.01 * steps))
    window = steps[steps > 75]
    assert got.still_falling is True and got.n_points == len(window) == 25
    assert got.slope == pytest.approx(-0.01, abs=1e-12)
    assert got.slope_ci95[1] == pytest.approx(-0.01, abs=1e-9)  # no residual: a zero-width interval
    assert got.drop == pytest.approx(0.01 * 25 / np.mean(5 - 0.01 * window), rel=1e-9)
    assert (got.start, got.end, got.steps) == (pytest.approx(4.99), pytest.approx(4.0), 100)


def test_a_plateau_with_noise_has_levelled_off():
    steps = np.arange(1, 201)
    loss = 1.5 + 3 * np.exp(-steps / 15) + np.random.default_rng(0).normal(0, 0.05, len(steps))
    got = convergence(_history(steps, loss))
    assert got.still_falling is False
    assert got.slope_ci95[0] < 0 < got.slope_ci95[1]


def test_a_significant_but_negligible_decline_is_not_still_falling():
    steps = np.arange(1, 101)
    got = convergence(_history(steps, 2 - 1e-5 * steps))
    assert got.slope_ci95[1] < 0 and got.drop < MIN_DROP and got.still_falling is False


def test_a_run_that_never_left_its_first_loss_did_not_learn():
    """A loss stuck near chance level, log(64) for 32 queries against 64 candidates: flat at the end, so the slope
    rule alone would call it levelled off."""
    steps = np.arange(1, 41)
    loss = np.log(64) + 0.02 * np.sin(steps)
    got = convergence(_history(steps, loss))
    assert got.still_falling is False and got.learned is False
    assert got.undertrained and got.state == "did not learn: undertrained"
    assert got.to_json()["undertrained"] is True


def test_a_loss_that_fell_and_levelled_learned_and_is_trained():
    steps = np.arange(1, 41)
    loss = 2 + 4.5 * np.exp(-steps / 5) + np.random.default_rng(3).normal(0, 0.02, len(steps))
    got = convergence(_history(steps, loss))
    assert got.learned is True and got.still_falling is False and not got.undertrained
    assert got.state == "levelled off"
    # the boundary: a window mean exactly MIN_LEARNED below the first loss has not learned, just below it has
    flat = [[1, 5.0], *[[s, 5.0 * (1 - MIN_LEARNED)] for s in range(2, 41)]]
    assert convergence(flat).learned is False
    lower = [[1, 5.0], *[[s, 5.0 * (1 - MIN_LEARNED) - 1e-6] for s in range(2, 41)]]
    assert convergence(lower).learned is True and not convergence(lower).undertrained


def test_too_few_points_in_the_window_cannot_decide():
    got = convergence(_history(range(5, 41, 5), np.linspace(6, 2, 8)))
    assert got.n_points == 2 and got.still_falling is None and got.slope is None
    assert convergence([]) is None
    assert "fewer than 4" in RULE


def test_slope_interval_matches_scipy_linregress():
    rng = np.random.default_rng(1)
    steps = np.arange(1, 81)
    loss = 4 - 0.02 * steps + rng.normal(0, 0.3, len(steps))
    got = convergence(_history(steps, loss))
    window = steps > 60
    fit = linregress(steps[window], loss[window])
    half = t.ppf(0.975, window.sum() - 2) * fit.stderr
    assert got.slope == pytest.approx(fit.slope, abs=1e-10)
    assert got.slope_ci95 == pytest.approx((fit.slope - half, fit.slope + half), abs=1e-10)
