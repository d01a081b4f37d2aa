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
    assert np.isfinite(point)
    return reps  # the percentile bootstrap takes the replicates as drawn


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


def _clustering(gold, draws, clusters, task="C") -> TaskItems:
    return TaskItems.from_json({
        "task": task, "category": "clustering", "metric": "v_measure",
        "items": [{"id": str(i), "gold": int(g)} for i, g in enumerate(gold)],
        "experiments": [{"ids": [str(i) for i in d], "cluster": [int(c) for c in cl]}
                        for d, cl in zip(draws, clusters)]})


def _noisy_clusters(rng, gold, noise):
    return np.where(rng.random(len(gold)) < noise, rng.integers(0, gold.max() + 1, len(gold)), gold)


def test_identical_clusterings_give_a_zero_width_interval_and_a_planted_difference_is_found():
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 8, 200)
    draws = [np.arange(200)]
    same = _noisy_clusters(rng, gold, 0.4)
    identical = PairedBootstrap({"1": [{"C": _clustering(gold, draws, [same])}],
                                 "2": [{"C": _clustering(gold, draws, [same.copy()])}]}, n_boot=B).compare("2", "1", ["C"])
    assert identical.delta == 0 and identical.ci95 == (0.0, 0.0)
    worse = PairedBootstrap({"1": [{"C": _clustering(gold, draws, [same])}],
                             "2": [{"C": _clustering(gold, draws, [_noisy_clusters(rng, gold, 0.8)])}]},
                            n_boot=B).compare("2", "1", ["C"])
    assert worse.delta < 0 and worse.ci95[1] < 0 and worse.ci95[0] <= worse.delta <= worse.ci95[1]


def test_clustering_half_samples_match_the_spread_over_fresh_datasets():
    """V-measure's sampling spread is known by simulation (fresh documents from one model); the half-sample
    interval's width matches it (as a normal interval's would: 2 x 1.96 standard deviations)."""
    n, labels = 300, 6

    def dataset(rng):
        gold = rng.integers(0, labels, n)
        return gold, _noisy_clusters(rng, gold, 0.5), _noisy_clusters(rng, gold, 0.6)

    def v(gold, clusters):
        from sklearn.metrics import v_measure_score
        return v_measure_score(gold, clusters)

    truth = np.std([v(g, a) - v(g, b) for g, a, b in (dataset(np.random.default_rng(100 + k)) for k in range(300))])
    widths = []
    for k in range(6):
        gold, a, b = dataset(np.random.default_rng(k))
        runs = {"1": [{"C": _clustering(gold, [np.arange(n)], [a])}], "2": [{"C": _clustering(gold, [np.arange(n)], [b])}]}
        got = PairedBootstrap(runs, n_boot=1000, seed=k).compare("2", "1", ["C"])
        widths.append((got.ci95[1] - got.ci95[0]) / (2 * 1.96))
    assert np.mean(widths) == pytest.approx(truth, rel=0.2)


def _word_pairs(n_words, n_pairs, rng):
    """Pairs of distinct words drawn from a small vocabulary, so words recur across pairs."""
    pairs = [tuple(rng.choice(n_words, 2, replace=False)) for _ in range(n_pairs)]
    return [(f"w{a}", f"w{b}") for a, b in pairs]


def _sts_with_texts(gold, predicted, texts, task="S") -> TaskItems:
    return TaskItems.from_json({"task": task, "category": "sts", "metric": "cosine_spearman",
                                "items": [{"id": f"p{i}", "gold": float(g), "predicted": float(p), "texts": list(t)}
                                          for i, (g, p, t) in enumerate(zip(gold, predicted, texts))]})


def test_pair_components_join_pairs_through_shared_texts():
    from poolattn.study.bootstrap import pair_components

    texts = np.array([[0, 1], [1, 2], [3, 4], [5, 5], [2, 6]])
    got = pair_components(texts)
    assert got[0] == got[1] == got[4] and len({got[0], got[2], got[3]}) == 3


def test_sts_pairs_sharing_words_widen_the_interval_over_the_pair_bootstrap():
    """Planted word effects: every pair with a word moves together. Components carry that; pairs do not."""
    from poolattn.study.bootstrap import COMPONENTS

    rng = np.random.default_rng(3)
    texts = _word_pairs(400, 300, rng)  # about as sparse as SimLex-999's: most words in one or two pairs
    effect = {f"w{i}": e for i, e in enumerate(rng.normal(0, 1, 400))}
    gold = rng.normal(0, 1, 300)
    shift = np.array([effect[a] + effect[b] for a, b in texts])
    ref, run = gold + rng.normal(0, 1, 300), gold + shift + rng.normal(0, 1, 300)
    by_pair = PairedBootstrap({"1": [{"S": _sts(gold, ref)}], "2": [{"S": _sts(gold, run)}]},
                              n_boot=B).compare("2", "1", ["S"])
    boot = PairedBootstrap({"1": [{"S": _sts_with_texts(gold, ref, texts)}],
                            "2": [{"S": _sts_with_texts(gold, run, texts)}]}, n_boot=B)
    by_component = boot.compare("2", "1", ["S"])
    assert boot.scheme("S") == COMPONENTS and by_component.delta == by_pair.delta
    assert by_component.ci95[1] - by_component.ci95[0] > 1.25 * (by_pair.ci95[1] - by_pair.ci95[0])


def test_too_few_components_fall_back_to_drawing_texts():
    """One component (every pair linked): drawing it is no resample at all; the texts are drawn instead."""
    from poolattn.study.bootstrap import TEXTS

    rng = np.random.default_rng(5)
    texts = _word_pairs(20, 200, rng)
    gold = rng.normal(0, 1, 200)
    boot = PairedBootstrap({"1": [{"S": _sts_with_texts(gold, gold + rng.normal(0, 1, 200), texts)}],
                            "2": [{"S": _sts_with_texts(gold, gold + rng.normal(0, 1, 200), texts)}]}, n_boot=B)
    got = boot.compare("2", "1", ["S"])
    assert boot.scheme("S") == TEXTS and got.ci95[1] - got.ci95[0] > 0.05


def test_sts_pairs_sharing_no_text_resample_like_the_pair_bootstrap():
    rng = np.random.default_rng(4)
    texts = [(f"a{i}", f"b{i}") for i in range(300)]
    gold = rng.normal(0, 1, 300)
    ref, run = gold + rng.normal(0, 1, 300), gold + rng.normal(0, 1.3, 300)
    width = {}
    for name, make in (("pair", lambda g, p: _sts(g, p)), ("component", lambda g, p: _sts_with_texts(g, p, texts))):
        got = PairedBootstrap({"1": [{"S": make(gold, ref)}], "2": [{"S": make(gold, run)}]},
                              n_boot=2000).compare("2", "1", ["S"])
        width[name] = got.ci95[1] - got.ci95[0]
    assert width["component"] == pytest.approx(width["pair"], rel=0.1)


def test_probe_draws_are_resampled_with_the_items():
    """Every item right or wrong together within a draw: items add no spread, the draws all of it."""
    from poolattn.study.bootstrap import _rng

    n, accuracy = 50, [1.0, 0.0, 1.0, 1.0, 0.0]
    gold = np.zeros(n, dtype=int)

    def run(per_draw):
        return {"K": TaskItems.from_json({"task": "K", "category": "classification", "metric": "accuracy", "items": [
            {"id": str(i), "gold": 0, "predicted": [0 if ok else 1 for ok in per_draw]} for i in range(n)]})}

    got = PairedBootstrap({"1": [run([1.0] * 5)], "2": [run(accuracy)]}, n_boot=B).compare("2", "1", ["K"])
    draws = _rng(0, "draws", "K").integers(0, 5, size=(B, 5))
    expected = np.array(accuracy)[draws].mean(axis=1) - 1.0
    assert got.delta == pytest.approx(np.mean(accuracy) - 1.0)
    assert got.ci95 == pytest.approx(tuple(np.quantile(expected, [0.025, 0.975])), abs=1e-12)
    assert gold.sum() == 0


def test_a_p_with_no_replicate_across_zero_is_at_its_floor():
    from poolattn.study.bootstrap import p_floor

    base = np.random.default_rng(8).random(60)
    got = PairedBootstrap({"1": [{"R": _retrieval(base)}], "2": [{"R": _retrieval(base + 0.125)}]},
                          n_boot=B).compare("2", "1", ["R"])
    assert got.p == pytest.approx(2 / (B + 1)) == p_floor(B) and got.p_at_floor
    noisy = PairedBootstrap({"1": [{"R": _retrieval(base)}], "2": [{"R": _retrieval(base[::-1])}]},
                            n_boot=B).compare("2", "1", ["R"])
    assert not noisy.p_at_floor
