"""The paired bootstrap on constructed cases with exact answers, against a loop written out here, and Holm."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy.stats import spearmanr

from poolattn.evaluation.items import TaskItems
from poolattn.study.bootstrap import PairedBootstrap, bootstrap_p, holm, with_holm

B = 400


def _retrieval(scores, task="R") -> TaskItems:
    return TaskItems.from_json({"task": task, "category": "retrieval", "metric": "ndcg_at_10",
                                "items": [{"id": f"q{i}", "score": float(s)} for i, s in enumerate(scores)]})


def _sts(gold, predicted, task="S") -> TaskItems:
    return TaskItems.from_json({"task": task, "category": "sts", "metric": "cosine_spearman",
                                "items": [{"id": f"p{i}", "gold": float(g), "predicted": float(p)}
                                          for i, (g, p) in enumerate(zip(gold, predicted))]})


def test_identical_runs_give_zero_delta_and_an_interval_at_zero():
    rng = np.random.default_rng(0)
    items = {"R": _retrieval(rng.random(50)), "S": _sts(rng.random(40), rng.random(40))}
    boot = PairedBootstrap({"1": [items], "2": [dict(items)]}, n_boot=B)
    got = boot.compare("2", "1", ["R", "S"])
    assert got.delta == 0 and got.ci95 == (0.0, 0.0) and got.p == 1.0
    assert (got.n_items, got.n_tasks, got.n_seeds) == (90, 2, 1)


def test_a_constant_shift_gives_that_delta_with_a_zero_width_interval():
    base = np.random.default_rng(1).random(60)
    boot = PairedBootstrap({"1": [{"R": _retrieval(base)}], "2": [{"R": _retrieval(base + 0.125)}]}, n_boot=B)
    got = boot.compare("2", "1", ["R"])
    assert got.delta == pytest.approx(0.125, abs=1e-12)
    assert got.ci95[0] == pytest.approx(0.125, abs=1e-12) and got.ci95[1] == pytest.approx(0.125, abs=1e-12)
    assert got.p == pytest.approx(2 / (B + 1)) and got.excludes_zero


def test_items_are_paired_by_id_not_by_position():
    base = np.random.default_rng(2).random(30)
    ref = _retrieval(base)
    shuffled = TaskItems.from_json({"task": "R", "category": "retrieval", "metric": "ndcg_at_10",
                                    "items": [{"id": f"q{i}", "score": float(base[i])} for i in reversed(range(30))]})
    got = PairedBootstrap({"1": [{"R": ref}], "2": [{"R": shuffled}]}, n_boot=B).compare("2", "1", ["R"])
    assert got.delta == 0 and got.ci95 == (0.0, 0.0)


def test_seed_variance_widens_the_interval_to_the_seeds_spread():
    """Seeds at +0 and +0.2 over a reference: replicates are 0, 0.1 or 0.2 with chance 1/4, 1/2, 1/4, then centred
    on 0.1 (a shift of their mean's noise, sd 0.0035 at 400 replicates): an interval 0.2 wide around 0.1."""
    base = np.random.default_rng(3).random(40)
    boot = PairedBootstrap({"1": [{"R": _retrieval(base)}],
                            "2": [{"R": _retrieval(base)}, {"R": _retrieval(base + 0.2)}]}, n_boot=B)
    got = boot.compare("2", "1", ["R"])
    assert got.delta == pytest.approx(0.1, abs=1e-12)
    assert got.ci95[1] - got.ci95[0] == pytest.approx(0.2, abs=1e-12)
    assert got.ci95[0] == pytest.approx(0.0, abs=0.015) and got.ci95[1] == pytest.approx(0.2, abs=0.015)
    assert (got.n_seeds, got.n_reference_seeds) == (2, 1)
    assert not got.excludes_zero


def _loop_bootstrap(runs, reference, tasks, n_boot, seed=0):
    """The documented procedure as a plain loop over replicates, seeds and tasks (scipy's spearman for STS)."""
    def rng(*names):
        return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])

    def score(items, rows):
        if items.category == "sts":
            return spearmanr(items.arrays["gold"][rows], items.arrays["predicted"][rows])[0]
        return items.arrays["score"][rows].mean()

    indices = {t: rng("items", t).integers(0, runs[reference][0][t].n, size=(n_boot, runs[reference][0][t].n))
               for t in tasks}
    seeds = {g: rng("seeds", g).integers(0, len(r), size=(n_boot, len(r))) for g, r in runs.items()}
    reps = []
    for b in range(n_boot):
        per_task = []
        for t in tasks:
            means = {g: np.mean([score(runs[g][s][t], indices[t][b]) for s in seeds[g][b]]) for g in runs}
            per_task.append(means["2"] - means[reference])
        reps.append(np.mean(per_task))
    reps = np.array(reps)
    point = np.mean([np.mean([r[t].score() for r in runs["2"]]) - np.mean([r[t].score() for r in runs[reference]])
                     for t in tasks])
    return reps - reps.mean() + point  # centred on the observed delta


def test_matches_a_loop_over_replicates_with_seeds_and_two_tasks():
    rng = np.random.default_rng(4)
    gold = rng.random(35)

    def run(shift):
        return {"R": _retrieval(np.clip(rng.random(25) * 0.3 + shift, 0, 1)),
                "S": _sts(gold, gold + rng.normal(0, 0.3 + shift, 35))}

    runs = {"1": [run(0.1)], "2": [run(0.3), run(0.2)]}
    got = PairedBootstrap(runs, n_boot=300).compare("2", "1", ["R", "S"])
    reps = _loop_bootstrap(runs, "1", ["R", "S"], 300)
    assert got.ci95[0] == pytest.approx(np.quantile(reps, 0.025), abs=1e-12)
    assert got.ci95[1] == pytest.approx(np.quantile(reps, 0.975), abs=1e-12)
    assert got.p == pytest.approx(bootstrap_p(reps), abs=1e-12)
    point = {g: {t: np.mean([r[t].score() for r in runs[g]]) for t in ("R", "S")} for g in runs}
    assert got.delta == pytest.approx(np.mean([point["2"][t] - point["1"][t] for t in ("R", "S")]), abs=1e-12)


def test_an_independent_bootstrap_agrees_within_resampling_noise():
    """A differently seeded, plainly written percentile bootstrap lands on the same interval to 0.01."""
    rng = np.random.default_rng(5)
    ref, run = rng.random(200), rng.random(200) * 0.9 + 0.08
    got = PairedBootstrap({"1": [{"R": _retrieval(ref)}], "2": [{"R": _retrieval(run)}]}, n_boot=4000).compare(
        "2", "1", ["R"])
    other = np.random.default_rng(12345)
    reps = [np.mean(run[i] - ref[i]) for i in (other.integers(0, 200, 200) for _ in range(4000))]
    assert got.ci95[0] == pytest.approx(np.quantile(reps, 0.025), abs=0.01)
    assert got.ci95[1] == pytest.approx(np.quantile(reps, 0.975), abs=0.01)


def test_holm_on_known_p_values():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_with_holm_adjusts_across_designs_and_categories():
    base = np.random.default_rng(6).random(50)
    runs = {"1": [{"R": _retrieval(base)}], "2": [{"R": _retrieval(base + 0.1)}], "3": [{"R": _retrieval(base)}]}
    boot = PairedBootstrap(runs, n_boot=B)
    cells = {g: {"retrieval": boot.compare(g, "1", ["R"]), "sts": None} for g in ("2", "3")}
    adjusted = with_holm(cells)
    assert adjusted["2"]["retrieval"].p_holm == pytest.approx(2 * 2 / (B + 1))
    assert adjusted["3"]["retrieval"].p_holm == 1.0 and adjusted["2"]["sts"] is None


def test_replicates_with_an_undefined_metric_are_dropped_up_to_a_limit():
    """Predictions with 3 distinct values: some resamples are constant, Spearman is undefined there."""
    gold = np.arange(30, dtype=float)
    rare = np.zeros(30)
    rare[0] = 1.0  # a resample leaves out item 0 with chance (29/30)^30 = 36%: mostly undefined
    common = np.tile([0.0, 1.0, 2.0], 10)  # constant resamples essentially never happen
    ok = PairedBootstrap({"1": [{"S": _sts(gold, common)}], "2": [{"S": _sts(gold, common + gold / 100)}]},
                         n_boot=B).compare("2", "1", ["S"])
    assert ok is not None and ok.n_replicates == B
    assert PairedBootstrap({"1": [{"S": _sts(gold, common)}], "2": [{"S": _sts(gold, rare)}]},
                           n_boot=B).compare("2", "1", ["S"]) is None


def test_clustering_intervals_are_centred_on_the_observed_delta():
    """Resampled V-measure is biased upward by repeated documents; the interval must still hold the delta."""
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 8, 120)
    draws = [rng.integers(0, 120, 120) for _ in range(4)]

    def run(noise):
        clusters = [np.where(rng.random(120) < noise, rng.integers(0, 8, 120), gold[d]) for d in draws]
        return {"C": TaskItems.from_json({
            "task": "C", "category": "clustering", "metric": "v_measure",
            "items": [{"id": str(i), "gold": int(g)} for i, g in enumerate(gold)],
            "experiments": [{"ids": [str(i) for i in d], "cluster": [int(c) for c in cl]}
                            for d, cl in zip(draws, clusters)]})}

    got = PairedBootstrap({"1": [run(0.2)], "2": [run(0.7)]}, n_boot=B).compare("2", "1", ["C"])
    assert got.ci95[0] <= got.delta <= got.ci95[1] and got.delta < 0
