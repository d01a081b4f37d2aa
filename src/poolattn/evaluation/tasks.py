"""The offline evaluation suite as real mteb tasks, and name -> task lookup.

The Hugging Face hub is out of reach on the machines this project runs on, so MTEB's own datasets cannot be
downloaded. The offline suite ships small data sets in `poolattn/resources/suite/` (one gzip JSON file each, listed
in `manifest.json`) and this module turns each manifest entry into an mteb task, so scoring is mteb's own code, not
ours. Tasks are data-driven: one base class per category, and each entry gets a thin subclass that only carries its
metadata (mteb reads `metadata` from the class, and `unload_data` drops instance attributes of that name).

Names resolve in this order: "suite" (every offline task), a category ("retrieval", ...: the offline tasks of that
category), an offline task name, then any MTEB task name via `mteb.get_task` (which needs the hub at load time).
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import importlib.resources
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, get_args

from datasets import Dataset, DatasetDict
from mteb import AbsTask, TaskMetadata
from mteb.abstasks import (
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskPairClassification,
    AbsTaskRetrieval,
    AbsTaskSTS,
)
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.types import Licenses

from poolattn.errors import InputError, InputNotFoundError, UsageError
from poolattn.evaluation.instructions import category_from_mteb_type

logger = logging.getLogger(__name__)

SUITE_CATEGORIES = ("retrieval", "reranking", "sts", "classification", "clustering", "pair_classification")
"""Categories the offline suite's data format covers (summarization has no offline data)."""

ALL_TASKS = "suite"
"""The task name that stands for every task of the offline suite."""

_MTEB_TYPE = {
    "retrieval": "Retrieval",
    "reranking": "Reranking",
    "sts": "STS",
    "classification": "Classification",
    "clustering": "Clustering",
    "pair_classification": "PairClassification",
}

DEFAULT_MAIN_SCORE = {
    "retrieval": "ndcg_at_10",
    "reranking": "map_at_1000",
    "sts": "cosine_spearman",
    "classification": "accuracy",
    "clustering": "v_measure",
    "pair_classification": "max_ap",
}
"""MTEB's main score per category; a manifest entry may name another metric mteb reports."""

_MAIN_SCORE_PATTERN = {
    "retrieval": r"(ndcg|map|recall|precision|mrr|hit_rate)_at_\d+",
    "reranking": r"(ndcg|map|recall|precision|mrr|hit_rate)_at_\d+",
    "sts": r"((cosine|manhattan|euclidean)_)?(pearson|spearman)",
    "classification": r"accuracy|f1|f1_weighted|precision|precision_weighted|recall|recall_weighted|ap|ap_weighted",
    "clustering": r"v_measure|ami",
    "pair_classification": r"(max|similarity|cosine|manhattan|euclidean|dot)_(ap|f1|accuracy|precision|recall)",
}

_REQUIRED_PAYLOAD_KEYS = {
    "retrieval": ("queries", "corpus", "qrels"),
    "reranking": ("test",),
    "sts": ("test",),
    "classification": ("train", "test"),
    "clustering": ("test",),
    "pair_classification": ("test",),
}

_LICENSES = frozenset(get_args(Licenses))


class UnknownTaskError(UsageError, ValueError):
    """A task name that is neither in the offline suite nor in MTEB."""


@dataclass(frozen=True)
class SuiteEntry:
    """One line of the offline suite's manifest.json."""

    name: str
    category: str
    file: str
    description: str = ""
    instruction: str = ""
    main_score: str = ""
    source: str = ""
    license: str = ""
    counts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.category not in SUITE_CATEGORIES:
            raise InputError(
                f"manifest entry {self.name!r}: unknown category {self.category!r}; "
                f"choose one of {list(SUITE_CATEGORIES)}"
            )
        if not self.main_score:
            object.__setattr__(self, "main_score", DEFAULT_MAIN_SCORE[self.category])
        if not re.fullmatch(_MAIN_SCORE_PATTERN[self.category], self.main_score):
            raise InputError(
                f"manifest entry {self.name!r}: main_score {self.main_score!r} is not a {self.category} metric mteb "
                f"reports; use e.g. {DEFAULT_MAIN_SCORE[self.category]!r}"
            )

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SuiteEntry:
        missing = [key for key in ("name", "category", "file") if not raw.get(key)]
        if missing:
            raise InputError(f"manifest entry {raw!r} lacks {missing}; every entry needs name, category and file")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in raw.items() if key in known})


# --- the manifest ---------------------------------------------------------------------------------------------


def default_suite_dir() -> Path:
    """The suite shipped inside the package (src/poolattn/resources/suite)."""
    return Path(str(importlib.resources.files("poolattn") / "resources" / "suite"))


def read_manifest(suite_dir: Path | None = None) -> list[SuiteEntry]:
    """The offline suite's entries, in manifest order.

    Raises:
        FileNotFoundError: when the folder has no manifest.json.
        TypeError: when manifest.json is not a JSON list.
        ValueError: when an entry is malformed or two entries share a name.
    """
    folder = Path(suite_dir) if suite_dir is not None else default_suite_dir()
    path = folder / "manifest.json"
    if not path.is_file():
        raise InputNotFoundError(
            f"no offline suite at {folder}: manifest.json is missing. The suite's data files are built into "
            "src/poolattn/resources/suite/; pass another folder with --suite-dir."
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise InputError(f"{path}: expected a JSON list of task entries, got {type(raw).__name__}")
    entries = [SuiteEntry.from_json(item) for item in raw]
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"{path}: task names must be unique; repeated: {duplicates}")
    return entries


def list_offline_tasks(suite_dir: Path | None = None) -> list[dict[str, Any]]:
    """The suite's tasks as plain records, for `poolattn evaluate --list-tasks`."""
    return [
        {
            "name": entry.name,
            "category": entry.category,
            "main_score": entry.main_score,
            "counts": entry.counts,
            "description": entry.description,
        }
        for entry in read_manifest(suite_dir)
    ]


# --- payloads -> mteb datasets --------------------------------------------------------------------------------


def _revision(raw: bytes) -> str:
    """A task's data revision: the first 16 hex digits of the payload file's SHA-256."""
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_payload(entry: SuiteEntry, suite_dir: Path, revision: str) -> dict[str, Any]:
    """The payload, checked to be the bytes whose `revision` the task's results will be labelled with."""
    path = suite_dir / entry.file
    raw = path.read_bytes()
    if _revision(raw) != revision:
        raise RuntimeError(
            f"{path} changed after task {entry.name} was created (revision {revision} -> {_revision(raw)}); "
            "results would carry the wrong data revision. Start the evaluation again."
        )
    payload = json.loads(gzip.decompress(raw).decode("utf-8"))
    missing = [key for key in _REQUIRED_PAYLOAD_KEYS[entry.category] if key not in payload]
    if missing:
        raise InputError(
            f"{path}: a {entry.category} payload needs keys {list(_REQUIRED_PAYLOAD_KEYS[entry.category])}; "
            f"missing {missing}"
        )
    return payload


def _columns(split: dict[str, list[Any]], names: Sequence[str], where: str) -> dict[str, list[Any]]:
    """The named columns of a split, checked to exist and to have one length."""
    missing = [name for name in names if name not in split]
    if missing:
        raise InputError(f"{where}: missing columns {missing}; expected {list(names)}")
    lengths = {name: len(split[name]) for name in names}
    if len(set(lengths.values())) != 1:
        raise InputError(f"{where}: columns differ in length {lengths}")
    if not next(iter(lengths.values())):
        raise InputError(f"{where}: the split is empty")
    return {name: list(split[name]) for name in names}


def _label_ids(*label_lists: list[Any]) -> list[list[int]]:
    """Labels as ints 0..K-1 (sorted by their string form), one mapping shared by all splits.

    mteb's binary-classification average precision breaks on string labels, and a per-split mapping would
    silently shift ids when a label is missing from one split.
    """
    names = sorted({str(label) for labels in label_lists for label in labels})
    index = {name: i for i, name in enumerate(names)}
    return [[index[str(label)] for label in labels] for labels in label_lists]


def _retrieval_split(payload: dict[str, Any], where: str) -> RetrievalSplitData:
    queries, corpus, qrels = payload["queries"], payload["corpus"], payload["qrels"]
    unknown_queries = sorted(set(qrels) - set(queries))[:5]
    unknown_docs = sorted({doc for hits in qrels.values() for doc in hits} - set(corpus))[:5]
    if unknown_queries or unknown_docs:
        raise InputError(f"{where}: qrels name unknown query ids {unknown_queries} or document ids {unknown_docs}")
    return RetrievalSplitData(
        queries=Dataset.from_dict({"id": list(queries), "text": list(queries.values())}),
        corpus=Dataset.from_dict({"id": list(corpus), "text": list(corpus.values())}),
        relevant_docs={qid: {doc: int(score) for doc, score in hits.items()} for qid, hits in qrels.items()},
        top_ranked=None,
    )


def _reranking_split(payload: dict[str, Any], where: str) -> RetrievalSplitData:
    """Each query ranks only its own candidates (positives then negatives), as mteb's reranking tasks do."""
    query_ids: list[str] = []
    query_texts: list[str] = []
    doc_ids: list[str] = []
    doc_texts: list[str] = []
    relevant: dict[str, dict[str, int]] = {}
    top_ranked: dict[str, list[str]] = {}
    skipped = 0
    for i, item in enumerate(payload["test"]):
        if not item.get("positive") or not item.get("negative"):
            skipped += 1
            continue
        qid = f"q{i}"
        query_ids.append(qid)
        query_texts.append(item["query"])
        candidates = [(f"{qid}-p{j}", text, 1) for j, text in enumerate(item["positive"])]
        candidates += [(f"{qid}-n{j}", text, 0) for j, text in enumerate(item["negative"])]
        relevant[qid] = {doc_id: score for doc_id, _, score in candidates}
        top_ranked[qid] = [doc_id for doc_id, _, _ in candidates]
        doc_ids += [doc_id for doc_id, _, _ in candidates]
        doc_texts += [text for _, text, _ in candidates]
    if skipped:
        logger.warning("%s: skipped %d queries without positives or negatives", where, skipped)
    if not query_ids:
        raise InputError(f"{where}: no query has both a positive and a negative")
    return RetrievalSplitData(
        queries=Dataset.from_dict({"id": query_ids, "text": query_texts}),
        corpus=Dataset.from_dict({"id": doc_ids, "text": doc_texts}),
        relevant_docs=relevant,
        top_ranked=top_ranked,
    )


# --- task classes: one per category -----------------------------------------------------------------------------


class _SuiteTask:
    """Loads an offline-suite payload into `self.dataset`; the category class decides the shape."""

    entry: ClassVar[SuiteEntry]
    suite_dir: ClassVar[Path]
    metadata: TaskMetadata
    dataset: Any
    data_loaded: bool

    def load_data(self, num_proc: int | None = None, *, timer: Any = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        where = f"{self.entry.name} ({self.suite_dir / self.entry.file})"
        payload = _read_payload(self.entry, self.suite_dir, self.metadata.revision)
        self.dataset = {"default": self._build(payload, where)}
        self.data_loaded = True

    def _build(self, payload: dict[str, Any], where: str) -> Any:
        raise NotImplementedError


class SuiteRetrievalTask(_SuiteTask, AbsTaskRetrieval):
    """Queries against one shared corpus; nDCG@10 by default."""

    def _build(self, payload: dict[str, Any], where: str) -> dict[str, RetrievalSplitData]:
        return {"test": _retrieval_split(payload, where)}


class SuiteRerankingTask(_SuiteTask, AbsTaskRetrieval):
    """mteb 2.x scores reranking as retrieval restricted to each query's candidates (`top_ranked`)."""

    def _build(self, payload: dict[str, Any], where: str) -> dict[str, RetrievalSplitData]:
        return {"test": _reranking_split(payload, where)}


class SuiteSTSTask(_SuiteTask, AbsTaskSTS):
    """Sentence pairs with graded similarity; Spearman of cosine against the gold scores."""

    def _build(self, payload: dict[str, Any], where: str) -> dict[str, Dataset]:
        self.min_score = payload.get("min_score", 0)
        self.max_score = payload.get("max_score", 5)
        test = _columns(payload["test"], ("sentence1", "sentence2", "score"), f"{where} test")
        return {"test": Dataset.from_dict(test)}


class SuitePairClassificationTask(_SuiteTask, AbsTaskPairClassification):
    """Pairs labelled 0/1; average precision of the best similarity threshold."""

    def _build(self, payload: dict[str, Any], where: str) -> dict[str, Dataset]:
        test = _columns(payload["test"], ("sentence1", "sentence2", "label"), f"{where} test")
        bad = sorted({label for label in test["label"] if label not in (0, 1)})
        if bad:
            raise InputError(f"{where}: pair labels must be 0 or 1, found {bad}")
        return {
            "test": Dataset.from_dict(
                {"sentence1": test["sentence1"], "sentence2": test["sentence2"], "labels": test["label"]}
            )
        }


class SuiteClassificationTask(_SuiteTask, AbsTaskClassification):
    """A logistic-regression probe on the embeddings of a few examples per label (MTEB's protocol).

    Small data: 16 training examples per label, 5 draws. When no label has more than 16 examples every draw is
    the same set, so a single draw is run.
    """

    samples_per_label = 16
    n_experiments = 5

    def _build(self, payload: dict[str, Any], where: str) -> DatasetDict:
        train = _columns(payload["train"], ("text", "label"), f"{where} train")
        test = _columns(payload["test"], ("text", "label"), f"{where} test")
        train_ids, test_ids = _label_ids(train["label"], test["label"])
        largest = max(train_ids.count(label) for label in set(train_ids))
        if largest <= self.samples_per_label:
            self.n_experiments = 1
        return DatasetDict(
            train=Dataset.from_dict({"text": train["text"], "label": train_ids}),
            test=Dataset.from_dict({"text": test["text"], "label": test_ids}),
        )


class SuiteClusteringTask(_SuiteTask, AbsTaskClustering):
    """k-means on all documents, V-measure against the labels, 10 bootstrap draws of the full set size.

    mteb's defaults embed 4% of a large corpus; the suite's sets are small, so everything is embedded.
    """

    max_fraction_of_documents_to_embed = None
    max_document_to_embed = None
    n_clusters = 10

    def _build(self, payload: dict[str, Any], where: str) -> dict[str, Dataset]:
        test = _columns(payload["test"], ("text", "label"), f"{where} test")
        (labels,) = _label_ids(test["label"])
        self.max_documents_per_cluster = len(labels)
        return {"test": Dataset.from_dict({"sentences": test["text"], "labels": labels})}


_BASES: dict[str, type[_SuiteTask]] = {
    "retrieval": SuiteRetrievalTask,
    "reranking": SuiteRerankingTask,
    "sts": SuiteSTSTask,
    "classification": SuiteClassificationTask,
    "clustering": SuiteClusteringTask,
    "pair_classification": SuitePairClassificationTask,
}


def _metadata(entry: SuiteEntry, revision: str) -> TaskMetadata:
    description = entry.description or f"Offline {entry.category} task {entry.name}."
    license_ = entry.license.lower() if entry.license.lower() in _LICENSES else "not specified"
    if entry.license and license_ == "not specified":
        description += f" License: {entry.license}."
    if entry.source:
        description += f" Source: {entry.source}."
    query_only = entry.category in ("retrieval", "reranking")
    return TaskMetadata(
        name=entry.name,
        description=description,
        dataset={"path": f"poolattn-suite/{entry.name}", "revision": revision},
        type=_MTEB_TYPE[entry.category],
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score=entry.main_score,
        license=license_,
        prompt=({"query": entry.instruction} if query_only else entry.instruction) or None,
        bibtex_citation="",
    )


_CLASS_CACHE: dict[tuple[Path, str, str], type[AbsTask]] = {}


def suite_task_class(entry: SuiteEntry, suite_dir: Path) -> type[AbsTask]:
    """The task class for one manifest entry: the category's class plus this entry's metadata."""
    payload_path = suite_dir / entry.file
    if not payload_path.is_file():
        raise InputNotFoundError(f"offline task {entry.name!r}: data file {payload_path} is missing")
    revision = _revision(payload_path.read_bytes())
    key = (suite_dir.resolve(), repr(entry), revision)  # a rebuilt entry or data file gets a fresh class
    if key not in _CLASS_CACHE:
        base = _BASES[entry.category]
        namespace = {
            "metadata": _metadata(entry, revision),
            "entry": entry,
            "suite_dir": suite_dir,
            "__module__": __name__,
            "__doc__": base.__doc__,
        }
        _CLASS_CACHE[key] = type(entry.name, (base,), namespace)
    return _CLASS_CACHE[key]


# --- lookup ---------------------------------------------------------------------------------------------------


def is_offline_task(task: AbsTask) -> bool:
    """Whether the task comes from the offline suite (its data needs no network)."""
    return isinstance(task, _SuiteTask)


def task_category(task: AbsTask) -> str:
    """Our category name for any task: the manifest's for offline tasks, else from mteb's task type."""
    if isinstance(task, _SuiteTask):
        return task.entry.category
    return category_from_mteb_type(task.metadata.type)


def _mteb_task_names() -> list[str]:
    # mteb's registry is private; it is only used to suggest names, so a layout change just drops suggestions.
    try:
        from mteb.get_tasks import _TASKS_REGISTRY
    except ImportError:  # pragma: no cover - older or newer mteb layouts
        return []
    return list(_TASKS_REGISTRY)


def _unknown(name: str, offline_names: Iterable[str]) -> UnknownTaskError:
    offline = list(offline_names)
    candidates = [ALL_TASKS, *SUITE_CATEGORIES, *offline, *_mteb_task_names()]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    lowered = [c for c in candidates if c.lower() == name.lower() and c not in close]
    close = lowered + close
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownTaskError(
        f"unknown task {name!r}.{hint} Use 'suite' for the whole offline suite, a category "
        f"({', '.join(SUITE_CATEGORIES)}), an offline task name, or an MTEB task name (MTEB's data needs the "
        "Hugging Face hub). List the offline tasks with `poolattn evaluate --list-tasks`."
    )


def _mteb_task(name: str) -> AbsTask:
    import mteb

    task = mteb.get_task(name)
    # The paper reports English MTEB: keep the English subsets of multilingual tasks.
    if task.metadata.is_multilingual and "eng" in task.metadata.languages:
        task = task.filter_languages(["eng"])
    return task


def get_tasks(names: Sequence[str], *, suite_dir: Path | None = None) -> list[AbsTask]:
    """Resolve task names to task objects, in order, without duplicates.

    Each name is "suite", a category, an offline task name, or an MTEB task name.

    Raises:
        UnknownTaskError: for a name that matches nothing, with close matches and how to list tasks.
        FileNotFoundError: for "suite" or a category when there is no offline suite.
    """
    folder = Path(suite_dir) if suite_dir is not None else default_suite_dir()
    try:
        entries = read_manifest(folder)
    except FileNotFoundError:
        entries = []
    by_name = {entry.name: entry for entry in entries}

    selected: list[SuiteEntry | str] = []
    for name in names:
        name = name.strip()
        if name == ALL_TASKS or name in SUITE_CATEGORIES:
            if not entries:
                read_manifest(folder)  # raises the FileNotFoundError that explains where the suite should be
            matched = [e for e in entries if name == ALL_TASKS or e.category == name]
            if not matched:
                raise UnknownTaskError(
                    f"the offline suite has no {name} task; its categories are "
                    f"{sorted({e.category for e in entries})}"
                )
            selected += matched
        elif name in by_name:
            selected.append(by_name[name])
        else:
            selected.append(name)

    tasks: list[AbsTask] = []
    seen: set[str] = set()
    for item in selected:
        key = item.name if isinstance(item, SuiteEntry) else item
        if key in seen:
            continue
        seen.add(key)
        if isinstance(item, SuiteEntry):
            tasks.append(suite_task_class(item, folder)())
            continue
        try:
            tasks.append(_mteb_task(item))
        except KeyError:
            raise _unknown(item, by_name) from None
    return tasks
