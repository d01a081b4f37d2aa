"""Item-level evidence: every task's main score recomputed from its items file equals mteb's number, and the
vectorised metrics on resampled items equal scikit-learn's and scipy's on the same resampled data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import average_precision_score, v_measure_score

from poolattn.evaluation.baselines import RandomEncoder
from poolattn.evaluation.items import TaskItems, load_run_items
from poolattn.evaluation.run import evaluate
from tests.evaluation.encoders import FIXTURE_SUITE, HashingEncoder

MTEB_ROUNDING = 5e-6
"""mteb rounds retrieval metrics to 5 decimals; every other main score is its float."""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("items")
    runs = {}
    for label, encoder in (("hashing", HashingEncoder()), ("random", RandomEncoder(dim=256, seed=0))):
        runs[label] = evaluate(encoder, ["suite"], out / label, suite_dir=FIXTURE_SUITE, show_progress=False,
                               model_name=label)
    return out, runs


def test_every_task_has_an_items_file_whose_score_is_mtebs(evaluated):
    out, runs = evaluated
    for label, results in runs.items():
        loaded = load_run_items(out / label / "items")
        assert set(loaded) == set(results), label
        for name, result in results.items():
            content = json.loads((out / label / "items" / f"{name}.json").read_text())
            assert content["task"] == name and content["metric"] == result["main_score_name"]
            assert content["mteb_main_score"] == result["main_score"]
            tolerance = MTEB_ROUNDING if result["category"] in ("retrieval", "reranking") else 1e-12
            assert loaded[name].score() == pytest.approx(result["main_score"], abs=tolerance), (label, name)
            assert content["main_score"] == pytest.approx(loaded[name].score(), abs=1e-15)


def test_items_recompute_the_main_score_independently(evaluated):
    """The same numbers from the raw items, written out here without items.py's metric code."""
    out, runs = evaluated
    results = runs["random"]
    checked = set()
    for name, result in results.items():
        content = json.loads((out / "random" / "items" / f"{name}.json").read_text())
        items, category = content["items"], result["category"]
        if category in ("retrieval", "reranking"):
            value = float(np.mean([item["score"] for item in items]))
            assert value == pytest.approx(result["main_score"], abs=MTEB_ROUNDING)
        elif category == "sts":
            gold = [item["gold"] for item in items]
            value = float(spearmanr(gold, [item["predicted"] for item in items])[0])
            assert value == pytest.approx(result["main_score"], abs=1e-12)
        elif category == "classification":
            experiments = len(items[0]["predicted"])
            value = np.mean([np.mean([item["predicted"][e] == item["gold"] for item in items])
                             for e in range(experiments)])
            assert value == pytest.approx(result["main_score"], abs=1e-12)
        elif category == "pair_classification":
            labels = [item["label"] for item in items]
            value = max(average_precision_score(labels, [item["similarity"][f] for item in items])
                        for f in content["functions"])
            assert content["functions"] == ["similarity", "cosine", "manhattan", "euclidean", "dot"]
            assert value == pytest.approx(result["main_score"], abs=1e-12)
        elif category == "clustering":
            gold = {item["id"]: item["gold"] for item in items}
            assert len(content["experiments"]) == 10
            value = np.mean([v_measure_score([gold[i] for i in e["ids"]], e["cluster"])
                             for e in content["experiments"]])
            assert value == pytest.approx(result["main_score"], abs=1e-12)
        checked.add(category)
    assert checked == {"retrieval", "reranking", "sts", "classification", "pair_classification", "clustering"}


def _resamples(n: int, rows: int = 25, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(rows, n))


def _items(category: str, metric: str, items: list[dict], **extra) -> TaskItems:
    return TaskItems.from_json({"task": "T", "category": category, "metric": metric, "items": items, **extra})


def test_resampled_average_precision_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=40), 1)  # rounding makes ties; resampling adds more
    labels = (rng.random(40) < 0.4).astype(int)
    task = _items("pair_classification", "max_ap",
                  [{"id": str(i), "label": int(y), "similarity": {"cosine": float(s), "dot": float(-s)}}
                   for i, (s, y) in enumerate(zip(scores, labels))], functions=["cosine", "dot"])
    idx = _resamples(40)
    got = task.score(idx)
    for row, value in zip(idx, got):
        expected = max(average_precision_score(labels[row], scores[row]),
                       average_precision_score(labels[row], -scores[row]))
        assert value == pytest.approx(expected, abs=1e-12)


def test_resampled_v_measure_matches_sklearn_on_the_expanded_draws():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 4, size=30)
    experiments = [{"ids": [str(i) for i in rng.integers(0, 30, size=30)],
                    "cluster": [int(c) for c in rng.integers(0, 5, size=30)]} for _ in range(3)]
    task = _items("clustering", "v_measure", [{"id": str(i), "gold": int(g)} for i, g in enumerate(gold)],
                  experiments=experiments)
    idx = _resamples(30)
    got = task.score(idx)
    for row, value in zip(idx, got):
        counts = np.bincount(row, minlength=30)
        per_draw = []
        for e in experiments:
            ids = [int(i) for i in e["ids"]]
            # a document drawn k times into the resample stands for k copies of each of its positions
            g = [gold[i] for i, _ in zip(ids, e["cluster"]) for _ in range(counts[i])]
            c = [cl for i, cl in zip(ids, e["cluster"]) for _ in range(counts[i])]
            per_draw.append(v_measure_score(g, c))
        assert value == pytest.approx(np.mean(per_draw), abs=1e-12)
    assert task.score() == pytest.approx(np.mean([v_measure_score([gold[int(i)] for i in e["ids"]], e["cluster"])
                                                  for e in experiments]), abs=1e-12)


def test_resampled_correlations_match_scipy():
    rng = np.random.default_rng(2)
    gold, predicted = np.round(rng.random(30) * 5), rng.random(30)
    items = [{"id": str(i), "gold": float(g), "predicted": float(p)} for i, (g, p) in enumerate(zip(gold, predicted))]
    idx = _resamples(30)
    for metric, reference in (("cosine_spearman", spearmanr), ("cosine_pearson", pearsonr)):
        got = _items("sts", metric, items).score(idx)
        for row, value in zip(idx, got):
            assert value == pytest.approx(reference(gold[row], predicted[row])[0], abs=1e-12), metric


def test_classification_f1_and_accuracy_on_resamples():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(4)
    gold = rng.integers(0, 3, size=20)
    predicted = rng.integers(0, 3, size=(20, 2))
    items = [{"id": str(i), "gold": int(g), "predicted": [int(p) for p in row]}
             for i, (g, row) in enumerate(zip(gold, predicted))]
    idx = _resamples(20, rows=5)
    f1 = _items("classification", "f1", items).score(idx)
    accuracy = _items("classification", "accuracy", items).score(idx)
    for row, f, a in zip(idx, f1, accuracy):
        assert f == pytest.approx(np.mean([f1_score(gold[row], predicted[row, e], average="macro")
                                           for e in range(2)]), abs=1e-12)
        assert a == pytest.approx(np.mean([(gold[row] == predicted[row, e]).mean() for e in range(2)]), abs=1e-12)


def test_alignment_reorders_items_and_refuses_other_items():
    task = _items("retrieval", "ndcg_at_10", [{"id": q, "score": s} for q, s in (("a", 0.1), ("b", 0.5), ("c", 0.9))])
    flipped = task.aligned_to(("c", "b", "a"))
    assert list(flipped.arrays["score"]) == [0.9, 0.5, 0.1]
    assert flipped.score(np.array([[0, 0, 1]])) == pytest.approx([(0.9 + 0.9 + 0.5) / 3])
    with pytest.raises(ValueError, match="items differ"):
        task.aligned_to(("a", "b", "d"))


@pytest.mark.slow
def test_the_shipped_suite_saves_items_that_recompute_every_main_score(tmp_path):
    """The real offline suite (5-draw classification, 600-document clustering, reranking), bag-of-words encoder."""
    results = evaluate(HashingEncoder(), ["suite"], tmp_path, show_progress=False)
    loaded = load_run_items(tmp_path / "items")
    assert set(loaded) == set(results) and len(results) >= 13
    for name, result in results.items():
        tolerance = MTEB_ROUNDING if result["category"] in ("retrieval", "reranking") else 1e-12
        assert loaded[name].score() == pytest.approx(result["main_score"], abs=tolerance), name


def test_weighted_scores_equal_the_scores_of_the_data_repeated_by_its_weights():
    """STS Spearman, retrieval means and accuracy on item weights equal scipy / numpy on the repeated items."""
    rng = np.random.default_rng(11)
    gold, predicted = rng.integers(0, 5, 40).astype(float), rng.normal(size=40).round(1)  # ties on both sides
    sts = _items("sts", "cosine_spearman", [{"id": str(i), "gold": g, "predicted": p, "texts": [f"a{i}", f"b{i}"]}
                                             for i, (g, p) in enumerate(zip(gold, predicted))])
    weights = rng.integers(0, 4, size=(6, 40)).astype(float)
    expected = [spearmanr(np.repeat(gold, w.astype(int)), np.repeat(predicted, w.astype(int)))[0] for w in weights]
    assert sts.score(weights=weights) == pytest.approx(expected, abs=1e-12)
    retrieval = _items("retrieval", "ndcg_at_10", [{"id": str(i), "score": float(s)} for i, s in enumerate(predicted)])
    assert retrieval.score(weights=weights) == pytest.approx(
        [np.repeat(predicted, w.astype(int)).mean() for w in weights], abs=1e-12)


def test_sts_items_record_their_texts(evaluated):
    out, runs = evaluated
    for name, result in runs["random"].items():
        if result["category"] != "sts":
            continue
        items = json.loads((out / "random" / "items" / f"{name}.json").read_text())["items"]
        assert all(len(item["texts"]) == 2 and all(isinstance(t, str) and t for t in item["texts"]) for item in items)
        loaded = TaskItems.load(out / "random" / "items" / f"{name}.json")
        same = [i for i in range(len(items)) for j in range(len(items))
                if i < j and items[i]["texts"][0].casefold() == items[j]["texts"][0].casefold()]
        assert all(loaded.texts[i, 0] in loaded.texts[:, 0][[k for k in range(len(items)) if k != i]] for i in same)
