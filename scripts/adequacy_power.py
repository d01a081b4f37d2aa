"""How often the adequacy rule (poolattn.study.adequacy) flags a run, by simulation, with a study's own loss noise.

    python scripts/adequacy_power.py                            # the committed study, docs/study/results.json
    python scripts/adequacy_power.py path/to/results.json

The loss criterion: ten last-quarter losses (40 steps), each a true mean plus a batch-to-batch deviation drawn from
the study's trained runs (each loss minus its run's last-quarter mean, over chance). The curve criterion: two checks
of 200 held-out queries a quarter of the training apart, as independent binomial draws (the real checks share their
queries, so the false alarms printed are an upper bound). The README quotes the committed study's figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from poolattn.study.adequacy import CHANCE_FRACTION, RISE, curve_rule_detection, loss_residuals, loss_rule_detection
from poolattn.study.results import load_results


def main(path: str) -> None:
    results = load_results(path)
    residuals = loss_residuals(list(results.runs.values()), results.settings)
    print(f"{len(residuals)} last-quarter losses; their spread is {np.std(residuals):.2f} of chance")
    print(f"loss criterion (mean of 10 losses not below {CHANCE_FRACTION:.0%} of chance): share of runs flagged")
    for fraction in (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80):
        print(f"  true mean {fraction:.0%} of chance: {loss_rule_detection(residuals, fraction):.1%}")
    print(f"curve criterion (rise over the last quarter above {RISE:.2f}), 200 queries: share of runs flagged")
    for rise in (0.0, 0.05, 0.10, 0.15, 0.20):
        print(f"  true rise {rise:.2f}: at recall 0.5 {curve_rule_detection(rise, 0.5, 200):.1%}, "
              f"at recall 0.7 {curve_rule_detection(rise, 0.7, 200):.1%}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "docs/study/results.json"))
