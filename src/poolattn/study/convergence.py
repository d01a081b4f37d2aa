"""Had a design finished learning when training stopped? A stated rule over its logged loss.

A design whose loss was still falling steeply at the last step is compared at a point its rivals may have long
passed, so its lower scores say more about the budget than about the design. The rule (`RULE`, printed in the
report) fits a least-squares line to the loss logged over the last quarter of the training steps and calls the run
still falling when the slope is negative with its 95% confidence interval (t distribution, n - 2 degrees of freedom)
below zero AND the fitted line drops by more than `MIN_DROP` of the window's mean loss across a quarter of the
steps. The second condition keeps a long run with a tiny but steady decline from being called undertrained; the
first keeps batch-to-batch noise from being read as a trend. With fewer than `MIN_POINTS` logged losses in the
window the rule cannot decide (log more often: `train.logging_steps`).

A run can also fail the other way: its loss never leaves where it started (an InfoNCE loss stuck near the chance
level, log of the candidates per query). Such a run is flat at the end, so the slope alone would call it levelled
off, yet its scores say nothing about its design either. The rule calls a run that did not learn when the mean loss
over the last quarter is not below the first logged loss by more than `MIN_LEARNED` of it. Either way the run is undertrained: every table
marks it and the comparison with the paper calls its disagreements inconclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WINDOW = 0.25
"""The final fraction of training steps the rule looks at."""

MIN_POINTS = 4
MIN_DROP = 0.01
"""Smallest fitted drop across the window, as a fraction of the window's mean loss, that counts as still falling."""

MIN_LEARNED = 0.10
"""Smallest drop of the last quarter's mean loss below the first logged loss, as a fraction of it, that counts as
having learned."""

RULE = (f"still falling: over the last {WINDOW:.0%} of the training steps, the least-squares slope of the logged "
        f"loss against step is negative with its 95% confidence interval below zero, and the fitted line drops by "
        f"more than {MIN_DROP:.0%} of the window's mean loss across that quarter; did not learn: the window's mean "
        f"loss is not below the first logged loss by more than {MIN_LEARNED:.0%} of it; either one makes the run "
        f"undertrained; fewer than {MIN_POINTS} logged losses in the window: undecided")


@dataclass(frozen=True)
class Convergence:
    """A run's loss at the start and end of training, and the rule's verdict on the last quarter."""

    start: float
    end: float
    steps: int
    n_points: int
    """Logged losses in the window."""
    slope: float | None
    slope_ci95: tuple[float, float] | None
    drop: float | None
    """Fitted drop across the window, as a fraction of the window's mean loss."""
    still_falling: bool | None
    """True: still learning when training stopped; None: too few points to decide."""
    learned: bool | None = None
    """False: the loss never left where it started (see MIN_LEARNED); None: too few points to decide."""

    @property
    def undertrained(self) -> bool:
        """Still falling, or never learned: either way the run's scores do not speak for its design."""
        return bool(self.still_falling) or self.learned is False

    @property
    def state(self) -> str:
        if self.still_falling is None:
            return f"undecided ({self.n_points} losses logged in the window)"
        if self.learned is False:
            return "did not learn: undertrained"
        return "still falling: undertrained" if self.still_falling else "levelled off"

    def to_json(self) -> dict[str, object]:
        return {"start": self.start, "end": self.end, "steps": self.steps, "n_points": self.n_points,
                "slope": self.slope, "slope_ci95": None if self.slope_ci95 is None else list(self.slope_ci95),
                "drop": self.drop, "still_falling": self.still_falling, "learned": self.learned,
                "undertrained": self.undertrained}


def convergence(loss_history: Sequence[Sequence[float]]) -> Convergence | None:
    """The rule applied to `[[step, loss], ...]` (as results.json records it); None without any logged loss."""
    from scipy.stats import t

    points = np.array([(s, v) for s, v in loss_history if v is not None and np.isfinite(v)], dtype=float)
    if not len(points):
        return None
    steps, loss = points[:, 0], points[:, 1]
    last = float(steps.max())
    window = steps > last * (1 - WINDOW)
    x, y = steps[window], loss[window]
    base = dict(start=float(loss[0]), end=float(loss[-1]), steps=int(last), n_points=int(window.sum()))
    if len(x) < MIN_POINTS or np.ptp(x) == 0:
        return Convergence(**base, slope=None, slope_ci95=None, drop=None, still_falling=None)
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (slope * x + intercept)
    se = np.sqrt((residuals @ residuals) / (len(x) - 2) / ((x - x.mean()) @ (x - x.mean())))
    half = float(t.ppf(0.975, len(x) - 2) * se)
    drop = float(-slope * last * WINDOW / y.mean()) if y.mean() else 0.0
    falling = bool(slope + half < 0 and drop > MIN_DROP)
    learned = bool(y.mean() < (1 - MIN_LEARNED) * base["start"])
    return Convergence(**base, slope=float(slope), slope_ci95=(float(slope - half), float(slope + half)), drop=drop,
                       still_falling=falling, learned=learned)
