"""The convergence rule on curves whose answer is known, and its slope interval against scipy's regression."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import linregress, t

from poolattn.study.convergence import MIN_DROP, RULE, convergence


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


def test_a_significant_but_negligible_decline_is_not_undertrained():
    steps = np.arange(1, 101)
    got = convergence(_history(steps, 2 - 1e-5 * steps))
    assert got.slope_ci95[1] < 0 and got.drop < MIN_DROP and got.still_falling is False


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
