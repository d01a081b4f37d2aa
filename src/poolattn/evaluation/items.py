"""Item-level evidence: the per-query, per-pair, per-example values a task's main score is computed from.

A main score alone cannot say whether two models differ by more than chance; the items it averages can (a paired
bootstrap resamples them, see `poolattn.study.bootstrap`). mteb already hands its predictions out through its
public `prediction_folder` argument, so we capture them there, join them with the task's gold data (loaded before
mteb runs, so mteb leaves it in place) and write one file per task:

    {"task", "category", "metric", "main_score", "mteb_main_score", "items": [...], ...}

- retrieval, reranking: `{"id": query_id, "score": that query's value of the main metric}`, main_score their mean
  (the per-query values come from mteb's own scoring function, so the mean is mteb's number before it rounds it to
  5 decimals);
- STS: `{"id", "gold", "predicted", "texts": [text 1, text 2]}`, main_score their Pearson or Spearman correlation
  (the texts say which pairs share a text, which the bootstrap must respect; files written before they were
  recorded get them from the bundled suite, `suite_pair_texts`);
- classification: `{"id", "gold", "predicted": [one label per experiment]}`, main_score the metric averaged over
  experiments (mteb's draws of the probe's training sample, every draw scoring every item);
- pair classification: `{"id", "label", "similarity": {function: value}}` (higher = more alike, so distances are
  negated), main_score the average precision, the maximum over the functions for `max_ap`;
- clustering: `{"id", "gold"}` per document plus `"experiments": [{"ids", "cluster"}]`, the documents each of
  mteb's k-means draws clustered and the cluster it put each in; main_score the V-measure averaged over draws.

`score(indices)` recomputes the main score on resampled items, vectorised over resamples; the metrics are written
out here (average precision, V-measure, rank correlation) and checked against scikit-learn and scipy in the tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ITEMS_DIR = "items"


class ItemsUnavailable(ValueError):
    """The task's main score cannot be recomputed from per-item evidence (the message says why)."""


# ------------------------------------------------------------------------------------------ capturing


class _RecordingRandom(random.Random):
    """A copy of a task's `random.Random` that remembers what `choices` and `sample` returned.

    mteb's clustering draws its k-means samples with `rng_state.choices` and saves only the cluster assignments;
    the recorded draws say which documents were clustered.
    """

    def __init__(self, source: random.Random) -> None:
        super().__init__()
        self.setstate(source.getstate())
        self.choice_draws: list[list[int]] = []
        self.sample_draws: list[list[int]] = []

    def choices(self, population, weights=None, *, cum_weights=None, k=1):  # noqa: D102 - random.Random's
        out = super().choices(population, weights, cum_weights=cum_weights, k=k)
        self.choice_draws.append(list(out))
        return out

    def sample(self, population, k, *, counts=None):  # noqa: D102 - random.Random's
        out = super().sample(population, k, counts=counts)
        self.sample_draws.append(list(out))
        return out


@dataclass
class Capture:
    """Where mteb writes its predictions for one task, and what the task's random draws were."""

    folder: Path
    random: _RecordingRandom | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def capture(task: Any) -> Iterator[Capture]:
    """Load the task's data first (so mteb keeps it after scoring), record its draws, give mteb a predictions folder.

    The data is unloaded on exit, as mteb would have done.
    """
    if not task.data_loaded:
        task.load_data()
    recorder = None
    if hasattr(task, "rng_state") and isinstance(task.rng_state, random.Random):
        recorder = _RecordingRandom(task.rng_state)
        task.rng_state = recorder
    try:
        with tempfile.TemporaryDirectory(prefix="poolattn-predictions-") as tmp:
            yield Capture(Path(tmp), recorder)
    finally:
        task.unload_data()


# ------------------------------------------------------------------------------------------ building


def _the_split(task: Any, predictions: dict[str, Any]) -> tuple[str, str, Any]:
    """(subset, split, mteb's predictions) for a task evaluated on exactly one subset and split."""
    subsets = [k for k in predictions if k != "mteb_model_meta"]
    splits = [(s, sp) for s in subsets for sp in predictions[s]]
    if len(splits) != 1:
        raise ItemsUnavailable(f"{task.metadata.name}: item evidence needs one subset and one split, got {splits}")
    subset, split = splits[0]
    return subset, split, predictions[subset][split]


def _data(task: Any, subset: str, split: str | None) -> Any:
    """The task's data for a subset (and split), looked up the way mteb looks it up."""
    data = task.dataset[split] if subset not in task.dataset and subset == "default" else task.dataset[subset]
    return data if split is None else data[split]


_PYTREC = {"ndcg": "ndcg_cut_{}", "map": "map_cut_{}", "recall": "recall_{}", "precision": "P_{}",
           "hit_rate": "success_{}"}


def _retrieval(task: Any, metric: str, subset: str, split: str, run: dict[str, dict[str, float]]) -> dict:
    # mteb's own per-query scoring (pytrec_eval underneath): the items are exactly the values mteb averages.
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    match = re.fullmatch(r"(ndcg|map|recall|precision|hit_rate)_at_(\d+)", metric)
    if not match or int(match.group(2)) not in task.k_values:
        raise ItemsUnavailable(f"{task.metadata.name}: no per-query values for main score {metric!r}")
    qrels = _data(task, subset, split)["relevant_docs"]
    if task.ignore_identical_ids:
        run = {qid: {doc: s for doc, s in docs.items() if doc != qid} for qid, docs in run.items()}
    per_query = calculate_retrieval_scores(run, qrels, list(task.k_values), task.skip_first_result).all_scores
    key = _PYTREC[match.group(1)].format(match.group(2))
    return {"items": [{"id": str(qid), "score": float(values[key])} for qid, values in per_query.items()]}


_STS = re.compile(r"(?:(cosine|manhattan|euclidean)_)?(pearson|spearman)")
_STS_PREDICTIONS = {"cosine": "cosine_scores", "manhattan": "manhattan_distances",
                    "euclidean": "euclidean_distances", None: "similarity_scores"}


def _sts(task: Any, metric: str, subset: str, split: str, scores: dict[str, list[float]]) -> dict:
    match = _STS.fullmatch(metric)
    if not match:
        raise ItemsUnavailable(f"{task.metadata.name}: no per-pair values for main score {metric!r}")
    predicted = scores.get(_STS_PREDICTIONS[match.group(1)])
    if predicted is None:  # mteb falls back to cosine when the model has no similarity function
        predicted = scores["cosine_scores"]
    data = _data(task, subset, split)
    items = [{"id": str(i), "gold": float(g), "predicted": float(p)}
             for i, (g, p) in enumerate(zip(data["score"], predicted, strict=True))]
    first, second = getattr(task, "column_names", ("sentence1", "sentence2"))
    if isinstance(first, str) and isinstance(second, str):  # text pairs (not images): record which texts they are
        for item, a, b in zip(items, data[first], data[second], strict=True):
            item["texts"] = [str(a), str(b)]
    return {"correlation": match.group(2), "items": items}


_PAIR_FUNCTIONS = {"similarity": ("similarity_scores", 1.0), "cosine": ("cosine_scores", 1.0),
                   "manhattan": ("manhattan_distances", -1.0), "euclidean": ("euclidean_distances", -1.0),
                   "dot": ("dot_scores", 1.0)}


def _pair(task: Any, metric: str, subset: str, split: str, scores: dict[str, list[float]]) -> dict:
    match = re.fullmatch(r"(max|similarity|cosine|manhattan|euclidean|dot)_ap", metric)
    if not match:
        raise ItemsUnavailable(f"{task.metadata.name}: no per-pair recomputation of main score {metric!r}")
    data = _data(task, subset, split)
    labels = data[0][task.label_column_name] if len(data) == 1 else data[task.label_column_name]
    functions = list(_PAIR_FUNCTIONS) if match.group(1) == "max" else [match.group(1)]
    columns = {}
    for name in functions:
        key, sign = _PAIR_FUNCTIONS[name]
        columns[name] = [sign * value for value in scores[key]]
    return {"functions": functions,
            "items": [{"id": str(i), "label": int(label), "similarity": {f: float(columns[f][i]) for f in functions}}
                      for i, label in enumerate(labels)]}


def _classification(task: Any, metric: str, subset: str, split: str, experiments: list[list[Any]]) -> dict:
    if getattr(task, "is_cross_validation", False) or metric not in _CLASSIFICATION_METRICS:
        raise ItemsUnavailable(f"{task.metadata.name}: no per-example recomputation of main score {metric!r}")
    data = _data(task, subset, None)
    gold = data[split][task.label_column_name]
    return {"items": [{"id": str(i), "gold": _plain(g), "predicted": [_plain(e[i]) for e in experiments]}
                      for i, g in enumerate(gold)]}


def _clustering(task: Any, metric: str, subset: str, split: str, assignments: dict[str, list[list[int]]],
                recorder: _RecordingRandom | None) -> dict:
    if metric != "v_measure" or set(assignments) != {"Level 0"}:
        raise ItemsUnavailable(f"{task.metadata.name}: per-document evidence covers single-level V-measure only")
    draws = assignments["Level 0"]
    if recorder is None or len(recorder.choice_draws) != len(draws) or len(recorder.sample_draws) > 1:
        raise ItemsUnavailable(f"{task.metadata.name}: could not record which documents mteb clustered")
    data = _data(task, subset, split)
    rows = recorder.sample_draws[0] if recorder.sample_draws else list(range(len(data)))
    labels = data[task.label_column_name]
    gold = [labels[r] for r in rows]
    if any(isinstance(g, list) and len(g) != 1 for g in gold):
        raise ItemsUnavailable(f"{task.metadata.name}: hierarchical labels are not supported")
    gold = [g[0] if isinstance(g, list) else g for g in gold]
    return {"items": [{"id": str(r), "gold": _plain(g)} for r, g in zip(rows, gold)],
            "experiments": [{"ids": [str(rows[p]) for p in positions], "cluster": [int(c) for c in clusters]}
                            for positions, clusters in zip(recorder.choice_draws, draws, strict=True)]}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def build(task: Any, category: str, captured: Capture, mteb_main_score: float) -> dict[str, Any]:
    """The items file's content for a task mteb just evaluated with `prediction_folder=captured.folder`.

    Raises:
        ItemsUnavailable: the main metric or the task's shape has no per-item form here.
    """
    name, metric = task.metadata.name, task.metadata.main_score
    files = list(captured.folder.glob("*_predictions.json"))
    if len(files) != 1:
        raise ItemsUnavailable(f"{name}: mteb wrote no predictions file")
    subset, split, predictions = _the_split(task, json.loads(files[0].read_text(encoding="utf-8")))
    if category in ("retrieval", "reranking"):
        body = _retrieval(task, metric, subset, split, predictions)
    elif category == "sts":
        body = _sts(task, metric, subset, split, predictions)
    elif category == "pair_classification":
        body = _pair(task, metric, subset, split, predictions)
    elif category == "classification":
        body = _classification(task, metric, subset, split, predictions)
    elif category == "clustering":
        body = _clustering(task, metric, subset, split, predictions, captured.random)
    else:
        raise ItemsUnavailable(f"{name}: no item evidence for category {category!r}")
    content = {"task": name, "category": category, "metric": metric, "main_score": None,
               "mteb_main_score": float(mteb_main_score), **body}
    content["main_score"] = float(TaskItems.from_json(content).score())
    return content


def write(content: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{content['task']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, allow_nan=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------ metrics


def _rows(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return values[idx]  # (B, n) resampled


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair, (B, n) -> (B,); NaN where a row is constant."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / denominator


def _average_precision_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """scikit-learn's average precision per row, (B, n) -> (B,): ties share the precision at their group's end."""
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    y = np.take_along_axis(labels, order, axis=1).astype(float)
    n = s.shape[1]
    tp = np.cumsum(y, axis=1)
    precision = tp / np.arange(1, n + 1)
    is_end = np.ones_like(s, dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    end = np.where(is_end, np.arange(n), n)
    end = np.minimum.accumulate(end[:, ::-1], axis=1)[:, ::-1]  # each position's tie-group end
    positives = y.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (y * np.take_along_axis(precision, end, axis=1)).sum(axis=1) / positives


def _entropy_rows(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(counts > 0, counts / total, 1.0)
    return -(np.where(counts > 0, p * np.log(p), 0.0)).sum(axis=1)


def _v_measure_weighted(weights: np.ndarray, gold: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """V-measure (beta 1, as scikit-learn) with each position counted `weights[b, p]` times, (B, m) -> (B,)."""
    codes, joint = np.unique(np.stack([gold, cluster], axis=1), axis=0, return_inverse=True)
    joint = joint.reshape(-1)
    onehot = np.zeros((len(joint), len(codes)))
    onehot[np.arange(len(joint)), joint] = 1.0
    counts = weights @ onehot  # (B, U) contingency cells
    by_gold = counts @ (codes[:, [0]] == np.unique(codes[:, 0])[None, :])
    by_cluster = counts @ (codes[:, [1]] == np.unique(codes[:, 1])[None, :])
    h_gold, h_cluster, h_joint = _entropy_rows(by_gold), _entropy_rows(by_cluster), _entropy_rows(counts)
    mutual = h_gold + h_cluster - h_joint
    with np.errstate(invalid="ignore", divide="ignore"):
        homogeneity = np.where(h_gold > 0, mutual / h_gold, 1.0)
        completeness = np.where(h_cluster > 0, mutual / h_cluster, 1.0)
        v = 2 * homogeneity * completeness / (homogeneity + completeness)
    return np.where(homogeneity + completeness > 0, v, 0.0)


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-ranks of `values` (n,) in each row's weighted sample, (B, n) -> (B, n): what scipy's rankdata gives on the
    data with every item repeated as often as its weight, without repeating it (ties share their mean rank)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])  # tie groups of the sorted values
    group_weight = np.add.reduceat(w, starts, axis=1)  # (B, G)
    mid = np.cumsum(group_weight, axis=1) - group_weight + (group_weight + 1) / 2
    ranks = np.empty(w.shape)
    ranks[:, order] = mid[:, np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(v)]))]
    return ranks


def _weighted_pearson_rows(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson correlation of x and y with each item counted `weights[b, i]` times, (B, n) -> (B,)."""
    total = weights.sum(axis=1, keepdims=True)
    x = x - (weights * x).sum(axis=1, keepdims=True) / total
    y = y - (weights * y).sum(axis=1, keepdims=True) / total
    denominator = np.sqrt((weights * x * x).sum(axis=1) * (weights * y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * x * y).sum(axis=1) / denominator


_CLASSIFICATION_METRICS = ("accuracy", "f1", "f1_weighted", "precision", "precision_weighted", "recall",
                           "recall_weighted")


def _classification_metric(metric: str, gold: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn import metrics

    if metric == "accuracy":
        return float(metrics.accuracy_score(gold, predicted))
    name, _, average = metric.partition("_")
    function = {"f1": metrics.f1_score, "precision": metrics.precision_score, "recall": metrics.recall_score}[name]
    return float(function(gold, predicted, average=average or "macro"))


# ------------------------------------------------------------------------------------------ reading


def _text_codes(pairs: list[tuple[str, str]]) -> np.ndarray:
    """(n, 2) integer codes of each pair's two texts, case-folded, so equal texts share a code."""
    _, codes = np.unique([text.casefold() for pair in pairs for text in pair], return_inverse=True)
    return codes.reshape(-1, 2)


def suite_pair_texts(task: str, suite_dir: str | Path | None = None) -> list[tuple[str, str]] | None:
    """The (text 1, text 2) of every test pair of a bundled suite task, in item-id order; None for other tasks.

    For STS items files written before they recorded their texts: a suite task's item id is its row in the test
    split. Reads the payload directly (importing the task classes would import mteb).
    """
    import gzip
    import importlib.resources

    folder = Path(suite_dir) if suite_dir is not None else Path(str(importlib.resources.files("poolattn")
                                                                        / "resources" / "suite"))
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    entry = next((e for e in json.loads(manifest.read_text(encoding="utf-8")) if e.get("name") == task), None)
    if entry is None or entry.get("category") != "sts":
        return None
    test = json.loads(gzip.decompress((folder / entry["file"]).read_bytes()).decode("utf-8"))["test"]
    return [(str(a), str(b)) for a, b in zip(test["sentence1"], test["sentence2"], strict=True)]


@dataclass(frozen=True)
class TaskItems:
    """One task's items file, as arrays, with the main score recomputable on any resample of its items."""

    task: str
    category: str
    metric: str
    main_score: float
    ids: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    experiments: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    """Clustering: per draw, (positions into `ids`, cluster of each)."""
    texts: np.ndarray | None = None
    """STS: (n, 2) codes of each pair's texts (equal codes, the same text); None when the file did not record them."""

    @classmethod
    def from_json(cls, content: dict[str, Any]) -> TaskItems:
        items = content["items"]
        ids = tuple(str(item["id"]) for item in items)
        category, metric = content["category"], content["metric"]
        arrays: dict[str, np.ndarray] = {}
        experiments: list[tuple[np.ndarray, np.ndarray]] = []
        texts = None
        if category in ("retrieval", "reranking"):
            arrays["score"] = np.array([item["score"] for item in items], dtype=float)
        elif category == "sts":
            arrays["gold"] = np.array([item["gold"] for item in items], dtype=float)
            arrays["predicted"] = np.array([item["predicted"] for item in items], dtype=float)
            if items and all("texts" in item for item in items):
                texts = _text_codes([tuple(item["texts"]) for item in items])
        elif category == "pair_classification":
            arrays["label"] = np.array([item["label"] for item in items], dtype=int)
            for function in content["functions"]:
                arrays[f"similarity.{function}"] = np.array([item["similarity"][function] for item in items], float)
        elif category == "classification":
            labels = sorted({str(item["gold"]) for item in items} | {str(p) for item in items
                                                                      for p in item["predicted"]})
            index = {label: i for i, label in enumerate(labels)}
            arrays["gold"] = np.array([index[str(item["gold"])] for item in items], dtype=int)
            arrays["predicted"] = np.array([[index[str(p)] for p in item["predicted"]] for item in items], dtype=int)
        elif category == "clustering":
            _, arrays["gold"] = np.unique([str(item["gold"]) for item in items], return_inverse=True)
            position = {item_id: i for i, item_id in enumerate(ids)}
            for experiment in content["experiments"]:
                experiments.append((np.array([position[i] for i in experiment["ids"]], dtype=int),
                                    np.array(experiment["cluster"], dtype=int)))
        else:
            raise ItemsUnavailable(f"{content['task']}: unknown category {category!r} in its items file")
        main = content.get("main_score")
        return cls(content["task"], category, metric, float("nan") if main is None else float(main), ids,
                   arrays, tuple(experiments), texts)

    @classmethod
    def load(cls, path: str | Path) -> TaskItems:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def n_draws(self) -> int:
        """Classification: the probe's training-sample draws (mteb's experiments) every item was scored under."""
        return int(self.arrays["predicted"].shape[1]) if self.category == "classification" else 1

    def with_texts(self, pairs: list[tuple[str, str]]) -> TaskItems:
        """The same items with each pair's texts, `pairs[int(id)]` (a suite task's ids are its test rows).

        Raises:
            ValueError: an id is not a row of `pairs`.
        """
        try:
            chosen = [pairs[int(i)] for i in self.ids]
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{self.task}: item ids are not rows of its {len(pairs)} test pairs ({exc})") from exc
        return replace(self, texts=_text_codes(chosen))

    def aligned_to(self, ids: tuple[str, ...]) -> TaskItems:
        """The same items in the order of `ids` (another run's), so resampled positions mean the same items.

        Raises:
            ValueError: the two runs were scored on different items.
        """
        if ids == self.ids:
            return self
        if set(ids) != set(self.ids) or len(ids) != len(self.ids):
            raise ValueError(f"{self.task}: the runs' items differ ({len(self.ids)} vs {len(ids)} ids); "
                             "were they evaluated on the same data?")
        where = {item_id: i for i, item_id in enumerate(self.ids)}
        order = np.array([where[i] for i in ids])
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        arrays = {k: v[order] for k, v in self.arrays.items()}
        experiments = tuple((inverse[positions], clusters) for positions, clusters in self.experiments)
        return TaskItems(self.task, self.category, self.metric, self.main_score, ids, arrays, experiments,
                         None if self.texts is None else self.texts[order])

    def score(self, idx: np.ndarray | None = None, *, weights: np.ndarray | None = None,
              draws: np.ndarray | None = None) -> np.ndarray | float:
        """The main score on all items (a float), or on each resample (B,): rows of item positions `idx` (B, n), or
        rows of item `weights` (B, n), each item counted that many times (retrieval, reranking, STS, accuracy and
        clustering only).

        `draws` (B, E), classification only: per resample, which of the probe's training-sample draws to average
        (indices into the recorded experiments, with repeats); by default every draw once.
        """
        if idx is not None and weights is not None:
            raise ValueError("give item positions (idx) or item weights, not both")
        if weights is not None:
            return self._score_weights(np.asarray(weights, dtype=float), draws)
        single = idx is None
        if single:
            idx = np.arange(self.n)[None, :]
        out = self._score_rows(np.asarray(idx), draws)
        return float(out[0]) if single else out

    def _per_draw_correct(self) -> np.ndarray:
        a = self.arrays
        return (a["predicted"] == a["gold"][:, None]).astype(float)  # (n, E)

    @staticmethod
    def _over_draws(per_draw: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
        """(B, E) scores per draw -> (B,): the mean over all draws, or over each row's drawn ones."""
        return per_draw.mean(axis=1) if draws is None else np.take_along_axis(per_draw, draws, axis=1).mean(axis=1)

    def _score_weights(self, weights: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
        a, total = self.arrays, weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.category in ("retrieval", "reranking"):
                return (weights * a["score"]).sum(axis=1) / total
            if self.category == "sts":
                gold, predicted = np.broadcast_to(a["gold"], weights.shape), np.broadcast_to(a["predicted"],
                                                                                             weights.shape)
                if self.metric.endswith("spearman"):
                    gold, predicted = _weighted_ranks(a["gold"], weights), _weighted_ranks(a["predicted"], weights)
                return _weighted_pearson_rows(gold, predicted, weights)
            if self.category == "classification" and self.metric == "accuracy":
                return self._over_draws(weights @ self._per_draw_correct() / total[:, None], draws)
        if self.category == "clustering":
            gold = a["gold"]
            return np.mean([_v_measure_weighted(weights[:, positions], gold[positions], clusters)
                            for positions, clusters in self.experiments], axis=0)
        raise ItemsUnavailable(f"{self.task}: no weighted score for {self.category!r} with main score {self.metric!r}")

    def _score_rows(self, idx: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
        a = self.arrays
        if self.category in ("retrieval", "reranking"):
            return _rows(a["score"], idx).mean(axis=1)
        if self.category == "sts":
            gold, predicted = _rows(a["gold"], idx), _rows(a["predicted"], idx)
            if self.metric.endswith("spearman"):
                from scipy.stats import rankdata

                gold, predicted = rankdata(gold, axis=1), rankdata(predicted, axis=1)
            return _pearson_rows(gold, predicted)
        if self.category == "pair_classification":
            labels = _rows(a["label"], idx)
            per_function = [_average_precision_rows(_rows(v, idx), labels)
                            for k, v in a.items() if k.startswith("similarity.")]
            return np.max(per_function, axis=0)
        if self.category == "classification":
            gold, predicted = a["gold"], a["predicted"]
            if self.metric == "accuracy":  # every experiment scores the same items: means of per-item accuracies
                return self._over_draws(self._per_draw_correct()[idx].mean(axis=1), draws)
            per_draw = np.array([[_classification_metric(self.metric, gold[row], predicted[row, e])
                                  for e in range(predicted.shape[1])] for row in idx])
            return self._over_draws(per_draw, draws)
        if self.category == "clustering":
            weights = np.zeros((idx.shape[0], self.n))
            np.add.at(weights, (np.arange(idx.shape[0])[:, None], idx), 1.0)
            return self._score_weights(weights, None)
        raise ItemsUnavailable(f"{self.task}: cannot score category {self.category!r}")


def load_run_items(folder: str | Path) -> dict[str, TaskItems]:
    """{task: TaskItems} for every items file in a run's folder (empty when there is none)."""
    folder = Path(folder)
    return {path.stem: TaskItems.load(path) for path in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
