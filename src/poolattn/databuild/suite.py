"""The offline evaluation suite: small MTEB-style tasks built from the evaluation side of each source.

Each builder returns a `Task` whose payload is what the evaluation code reads (see `PAYLOAD_KEYS`).
Sizes are set so one task encodes at most `MAX_TEXTS` texts and about `MAX_TOKENS` tokens: the study
evaluates several models on all tasks on a 2-core CPU. Retrieval and reranking candidates include hard
distractors from the source's structure so that scores do not saturate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from poolattn.databuild.keys import record_id, split_key
from poolattn.databuild.lexical import TfidfIndex
from poolattn.databuild.sources import Loaded
from poolattn.databuild.sources.bible import VersePair
from poolattn.databuild.sources.debian import DebianPackage
from poolattn.databuild.sources.foldoc import Term
from poolattn.databuild.sources.wordnet import Synset
from poolattn.databuild.text import approx_tokens, ranked, truncate

logger = logging.getLogger(__name__)

MAX_TEXTS = 1200
MAX_TOKENS = 30_000
# retrieval documents are cut to this many characters: instruction-free, but most of a retrieval task's tokens
DOC_CHARS = 300
MAIN_SCORES = {
    "retrieval": "ndcg_at_10",
    "reranking": "map_at_1000",
    "classification": "accuracy",
    "clustering": "v_measure",
    "pair_classification": "max_ap",
    "sts": "cosine_spearman",
}
PAYLOAD_KEYS = {
    "retrieval": {"queries", "corpus", "qrels"},
    "reranking": {"test"},
    "classification": {"train", "test"},
    "clustering": {"test"},
    "pair_classification": {"test"},
    "sts": {"test", "min_score", "max_score"},
}


@dataclass
class Task:
    name: str
    category: str
    description: str
    instruction: str
    source: str  # a training source name ("debian") or an evaluation-only one ("trec")
    license: str
    payload: dict[str, Any]
    keys: set[str] = field(default_factory=set)  # split keys of training-source items used

    def texts(self) -> list[str]:
        """Every text the evaluation encodes, repeats included (that is what costs time)."""
        p = self.payload
        if self.category == "retrieval":
            return list(p["queries"].values()) + list(p["corpus"].values())
        if self.category == "reranking":
            return [t for x in p["test"] for t in [x["query"], *x["positive"], *x["negative"]]]
        if self.category == "classification":
            return p["train"]["text"] + p["test"]["text"]
        if self.category == "clustering":
            return list(p["test"]["text"])
        if self.category in ("pair_classification", "sts"):
            return p["test"]["sentence1"] + p["test"]["sentence2"]
        raise ValueError(f"unknown task category {self.category!r}; expected one of {sorted(MAIN_SCORES)}")

    def counts(self) -> dict[str, int]:
        p = self.payload
        out: dict[str, int] = {}
        if self.category == "retrieval":
            out = {"queries": len(p["queries"]), "corpus": len(p["corpus"]),
                   "relevant": sum(len(d) for d in p["qrels"].values())}
        elif self.category == "reranking":
            candidates = sum(len(x["positive"]) + len(x["negative"]) for x in p["test"])
            out = {"queries": len(p["test"]), "candidates": candidates}
        elif self.category == "classification":
            out = {"train": len(p["train"]["text"]), "test": len(p["test"]["text"]),
                   "labels": len(set(p["test"]["label"]))}
        elif self.category == "clustering":
            out = {"test": len(p["test"]["text"]), "labels": len(set(p["test"]["label"]))}
        elif self.category == "pair_classification":
            out = {"pairs": len(p["test"]["label"]), "positive": sum(p["test"]["label"])}
        elif self.category == "sts":
            out = {"pairs": len(p["test"]["score"])}
        texts = self.texts()
        out["texts"] = len(texts)
        out["approx_tokens"] = approx_tokens(texts)
        return out

    def manifest_entry(self) -> dict[str, Any]:
        return {"name": self.name, "category": self.category, "file": f"{self.name}.json.gz",
                "description": self.description, "instruction": self.instruction,
                "main_score": MAIN_SCORES[self.category], "source": self.source, "license": self.license,
                "counts": self.counts()}


def _retrieval(queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, str]) -> dict[str, Any]:
    qrels = {qid: {relevant[qid]: 1} for qid in queries}
    return {"queries": queries, "corpus": dict(sorted(corpus.items())), "qrels": qrels}


def _labelled(items: Sequence[Any], text: Callable[[Any], str], label: Callable[[Any], str]) -> dict[str, list[str]]:
    return {"text": [text(x) for x in items], "label": [label(x) for x in items]}


def _per_label(items: Sequence[Any], label: Callable[[Any], str], n: int) -> tuple[list[Any], list[Any]]:
    """(first n items of each label, the rest), keeping the input order within each group."""
    taken: dict[str, int] = defaultdict(int)
    head, rest = [], []
    for item in items:
        if taken[label(item)] < n:
            taken[label(item)] += 1
            head.append(item)
        else:
            rest.append(item)
    return head, rest


# ---- training sources (evaluation side only) ----------------------------------------------------------
def debian_retrieval(packages: Sequence[DebianPackage], license: str, n_queries: int = 100,
                     distractors: int = 2) -> Task:
    """Synopsis -> long description among descriptions of the same sections."""
    order = ranked(packages, key=record_id, salt="task:debian")
    queries = order[:n_queries]
    chosen = {p.name for p in queries}
    pool: dict[str, list[DebianPackage]] = defaultdict(list)
    for p in order[n_queries:]:
        pool[p.section].append(p)
    need: dict[str, int] = defaultdict(int)
    for q in queries:
        need[q.section] += distractors
    docs = list(queries) + [p for section, n in sorted(need.items()) for p in pool[section][:n] if p.name not in chosen]
    payload = _retrieval({f"q-{record_id(p)}": p.synopsis for p in queries},
                         {f"d-{record_id(p)}": truncate(p.description, DOC_CHARS) for p in docs},
                         {f"q-{record_id(p)}": f"d-{record_id(p)}" for p in queries})
    return Task("PoolattnDebianSynopsisRetrieval", "retrieval",
                "Debian bookworm package synopsis -> the package's long description (first "
                f"{DOC_CHARS} characters); the corpus adds {distractors} descriptions from the same archive section "
                "per query.",
                "Given a Debian package synopsis, retrieve the package's full description",
                "debian", license, payload, {split_key(record_id(p)) for p in docs})


def bible_retrieval(verses: Sequence[VersePair], license: str, n_queries: int = 100, window: int = 1,
                    similar: int = 2) -> Task:
    """KJV verse -> the same verse in the WEB, among its neighbours and the verses worded most like it."""
    verses = sorted(verses, key=record_id)  # TF-IDF ties break by position: make it order-independent
    by_ref = {v.ref: v for v in verses}
    position = {v.ref: i for i, v in enumerate(verses)}
    index = TfidfIndex([v.web for v in verses])
    queries = ranked(verses, key=record_id, salt="task:bible")[:n_queries]
    docs: dict[str, VersePair] = {}
    for q in queries:
        near = [by_ref.get(f"{q.chapter}.{n}") for n in range(q.verse - window, q.verse + window + 1)]
        alike = [verses[i] for i in index.top(q.web, similar, exclude={position[q.ref]})]
        for v in [*near, *alike]:
            if v is not None:
                docs[v.ref] = v
    payload = _retrieval({f"q-{record_id(v)}": v.kjv for v in queries},
                         {f"d-{record_id(v)}": v.web for v in docs.values()},
                         {f"q-{record_id(v)}": f"d-{record_id(v)}" for v in queries})
    return Task("PoolattnBibleVerseRetrieval", "retrieval",
                "King James Version verse -> the same verse in the World English Bible; the corpus holds, per "
                f"query, the WEB verses within {window} verse(s) and the {similar} held-out WEB verses worded most "
                "like the answer (TF-IDF), which finds parallel passages and formulaic repeats.",
                "Given a Bible verse in the King James Version, retrieve the same verse in the World English Bible",
                "bible", license, payload, {split_key(record_id(v)) for v in docs.values()})


def foldoc_retrieval(terms: Sequence[Term], license: str, n_queries: int = 100, distractors: int = 2) -> Task:
    """Computing term -> its FOLDOC definition, among definitions of terms of the same category."""
    order = ranked([t for t in terms if t.category], key=record_id, salt="task:foldoc")
    queries = order[:n_queries]
    pool: dict[str, list[Term]] = defaultdict(list)
    for t in order[n_queries:]:
        pool[t.category].append(t)
    need: dict[str, int] = defaultdict(int)
    for q in queries:
        need[q.category] += distractors
    docs = list(queries) + [t for category, n in sorted(need.items()) for t in pool[category][:n]]
    payload = _retrieval({f"q-{record_id(t)}": t.headword for t in queries},
                         {f"d-{record_id(t)}": truncate(t.definition, DOC_CHARS) for t in docs},
                         {f"q-{record_id(t)}": f"d-{record_id(t)}" for t in queries})
    return Task("PoolattnFoldocTermRetrieval", "retrieval",
                f"FOLDOC computing term -> its definition (first {DOC_CHARS} characters); the corpus adds "
                f"{distractors} definitions of the same FOLDOC category per query.",
                "Given a computing term, retrieve its definition from a computing dictionary",
                "foldoc", license, payload, {split_key(record_id(t)) for t in docs})


def wordnet_reranking(synsets: Sequence[Synset], license: str, n_queries: int = 100, negatives: int = 7) -> Task:
    """Lemmas -> definition, reranked against the definitions of sibling senses (same hypernym)."""
    children: dict[str, list[Synset]] = defaultdict(list)
    for s in synsets:
        for parent in s.parents:
            children[parent].append(s)
    rows, used = [], set()
    for s in ranked(synsets, key=record_id, salt="task:wordnet-rerank"):
        if len(rows) >= n_queries:
            break
        siblings = list({c.id: c for p in s.parents for c in children[p] if c.id != s.id}.values())
        if len(siblings) < 3:
            continue
        negs = ranked(siblings, key=record_id, salt=f"rerank:{s.id}")[:negatives]
        rows.append({"query": s.query, "positive": [s.definition], "negative": [n.definition for n in negs]})
        used.update(split_key(record_id(x)) for x in [s, *negs])
    return Task("PoolattnWordNetGlossReranking", "reranking",
                "WordNet 3.0 synonym set -> its definition, ranked against up to "
                f"{negatives} definitions of sibling senses (same hypernym, or same head adjective).",
                "Given a word and its synonyms, retrieve the dictionary definition of that sense",
                "wordnet", license, {"test": rows}, used)


def wordnet_supersense_clustering(synsets: Sequence[Synset], license: str, per_label: int = 25) -> Task:
    """Noun definitions clustered by WordNet lexicographer file (supersense)."""
    nouns = [s for s in ranked(synsets, key=record_id, salt="task:wordnet-cluster") if s.id.startswith("n:")]
    sizes: dict[str, int] = defaultdict(int)
    for s in nouns:
        sizes[s.lexname] += 1
    nouns = [s for s in nouns if sizes[s.lexname] >= per_label and s.lexname != "noun.Tops"]
    chosen, _ = _per_label(nouns, lambda s: s.lexname, per_label)
    return Task("PoolattnWordNetSupersenseClustering", "clustering",
                f"WordNet noun definitions, {per_label} per supersense (lexicographer file, e.g. noun.animal).",
                "Identify the semantic category of the dictionary definition",
                "wordnet", license, {"test": _labelled(chosen, lambda s: s.definition, lambda s: s.lexname)},
                {split_key(record_id(s)) for s in chosen})


def bible_pair_classification(verses: Sequence[VersePair], license: str, n_pairs: int = 240,
                              exclude: set[str] = frozenset()) -> Task:
    """(KJV verse, WEB verse): the same verse (1) or the other held-out verse worded most like it (0)."""
    verses = sorted(verses, key=record_id)
    index = TfidfIndex([v.web for v in verses])
    position = {v.ref: i for i, v in enumerate(verses)}
    pool = [v for v in ranked(verses, key=record_id, salt="task:bible-pairs") if record_id(v) not in exclude]
    s1, s2, labels, used = [], [], [], set()
    for v in pool[:n_pairs]:
        positive = len(labels) % 2 == 0
        other = v if positive else verses[index.top(v.web, 1, exclude={position[v.ref]})[0]]
        s1.append(v.kjv)
        s2.append(other.web)
        labels.append(1 if positive else 0)
        used.update({split_key(record_id(v)), split_key(record_id(other))})
    return Task("PoolattnBibleParaphrasePairClassification", "pair_classification",
                "Pairs (KJV verse, WEB verse): label 1 when both are the same verse, 0 when the WEB text is the "
                "other held-out verse worded most like the true translation (TF-IDF; often a parallel passage).",
                "Given a Bible verse, retrieve another translation of the same verse",
                "bible", license, {"test": {"sentence1": s1, "sentence2": s2, "label": labels}}, used)


# ---- evaluation-only sources ------------------------------------------------------------------------
def trec_classification(loaded: Loaded[Any], per_label: int = 16, n_test: int = 500) -> Task:
    order = ranked(loaded.items, key=lambda q: q.text, salt="task:trec")
    train, rest = _per_label(order, lambda q: q.coarse, per_label)
    test = rest[:n_test]
    return Task("PoolattnTrecQuestionClassification", "classification",
                f"TREC questions by coarse answer type (6 labels); {per_label} training examples per label, "
                "test in the natural label distribution.",
                "Classify the question by the type of answer it asks for",
                "trec", loaded.provenance[0].license,
                {"train": _labelled(train, lambda q: q.text, lambda q: q.coarse),
                 "test": _labelled(test, lambda q: q.text, lambda q: q.coarse)})


def newsgroups_tasks(loaded: Loaded[Any], max_chars: int = 300, train_per_label: int = 8,
                     test_per_label: int = 10, cluster_per_label: int = 15) -> list[Task]:
    """Classification (official train/test files) and clustering (other test-file posts)."""
    license = loaded.provenance[0].license
    order = ranked(loaded.items, key=lambda p: p.id, salt="task:20ng")
    train, _ = _per_label([p for p in order if p.id.startswith("train:")], lambda p: p.label, train_per_label)
    test, rest = _per_label([p for p in order if p.id.startswith("test:")], lambda p: p.label, test_per_label)
    clusters, _ = _per_label(rest, lambda p: p.label, cluster_per_label)

    def cut(p: Any) -> str:
        return truncate(p.text, max_chars)

    return [
        Task("PoolattnNewsgroupsClassification", "classification",
             f"20 Newsgroups posts (lowercased, letters only, first {max_chars} characters) by newsgroup; "
             f"{train_per_label} training and {test_per_label} test posts per newsgroup.",
             "Classify the newsgroup post into its newsgroup topic", "20newsgroups", license,
             {"train": _labelled(train, cut, lambda p: p.label), "test": _labelled(test, cut, lambda p: p.label)}),
        Task("PoolattnNewsgroupsClustering", "clustering",
             f"20 Newsgroups test-file posts (first {max_chars} characters), {cluster_per_label} per newsgroup, "
             "clustered by newsgroup.",
             "Identify the topic of the newsgroup post", "20newsgroups", license,
             {"test": _labelled(clusters, cut, lambda p: p.label)}),
    ]


def binary_classification(loaded: Loaded[Any], name: str, description: str, instruction: str,
                          per_label_train: int = 16, per_label_test: int = 150) -> Task:
    """A balanced two-label task (train and test drawn per label, disjoint)."""
    order = ranked(loaded.items, key=lambda x: x.text, salt=f"task:{loaded.name}")
    train, rest = _per_label(order, lambda x: x.label, per_label_train)
    test, _ = _per_label(rest, lambda x: x.label, per_label_test)
    return Task(name, "classification", description, instruction, loaded.name, loaded.provenance[0].license,
                {"train": _labelled(train, lambda x: x.text, lambda x: x.label),
                 "test": _labelled(test, lambda x: x.text, lambda x: x.label)})


def word_similarity_sts(loaded: Loaded[Any], dataset: str, name: str, instruction: str, max_pairs: int) -> Task:
    """Word pairs with their mean human similarity (or relatedness) rating, 0-10."""
    pairs = [p for p in loaded.items if p.dataset == dataset]
    total = len(pairs)
    prov = next(p for p in loaded.provenance if dataset in p.member)
    if len(pairs) > max_pairs:
        pairs = ranked(pairs, key=lambda p: f"{p.word1}|{p.word2}", salt=f"task:{dataset}")[:max_pairs]
    size = f"all {total} pairs" if len(pairs) == total else (
        f"a fixed subsample of {len(pairs)} of its {total} pairs (the 1,500-text budget)")
    return Task(name, "sts",
                f"{dataset} word pairs with graded human judgements (mean rating 0-10); {size}.",
                instruction, dataset, prov.license,
                {"test": {"sentence1": [p.word1 for p in pairs], "sentence2": [p.word2 for p in pairs],
                          "score": [p.score for p in pairs]}, "min_score": 0.0, "max_score": 10.0})
