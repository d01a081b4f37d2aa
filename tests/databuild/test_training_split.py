"""Keys, the train/evaluation partition, hard-negative rules and the builder's invariant checks."""

from __future__ import annotations

import pytest

from poolattn.databuild import keys, suite, training
from poolattn.databuild.build import BuildError, verify
from poolattn.databuild.sources.bible import VersePair
from poolattn.databuild.sources.debian import DebianPackage
from poolattn.databuild.sources.foldoc import Term
from poolattn.databuild.sources.wordnet import Synset
from poolattn.databuild.text import is_eval_key


def _pkg(name: str, section: str, source: str | None = None) -> DebianPackage:
    return DebianPackage(name, source or name, section, f"synopsis of {name}", f"long description of {name}")


def test_split_key_is_the_chapter_for_bible_and_the_id_otherwise():
    assert keys.split_key("bible:Gen.1.1") == "bible:Gen.1"
    assert keys.split_key("bible:1Sam.17.49") == "bible:1Sam.17"
    assert keys.split_key("wordnet:n:00976953") == "wordnet:n:00976953"
    with pytest.raises(ValueError, match="bad record id"):
        keys.split_key("nosuchsource:x")


def test_partition_follows_the_hash_rule_and_keeps_chapters_whole():
    verses = [VersePair(f"Gen.{c}.{v}", f"k{c}.{v}", f"w{c}.{v}") for c in range(1, 40) for v in range(1, 4)]
    train, held = keys.partition(verses)
    assert len(train) + len(held) == len(verses) and held  # 39 chapters: some land on each side
    for v in held:
        assert is_eval_key(f"bible:{v.chapter}")
    assert not {v.chapter for v in train} & {v.chapter for v in held}


def test_debian_negative_is_same_section_other_source():
    pkgs = [_pkg("a", "games"), _pkg("a-data", "games", source="a"), _pkg("b", "games"), _pkg("c", "net")]
    records, misses = training.debian_triples(pkgs, limit=10)
    by_id = {r["id"]: r for r in records}
    assert by_id["debian:a"]["negative"] == "long description of b"  # a-data shares a's source
    assert by_id["debian:b"]["negative"] in ("long description of a", "long description of a-data")
    assert "debian:c" not in by_id and misses == 1  # alone in its section: no hard negative


def test_wordnet_negative_is_a_sibling():
    parent = "n:1"
    synsets = [Synset("n:2", "noun.act", ("raid",), "a sudden short attack", (parent,)),
               Synset("n:3", "noun.act", ("strike",), "an attack to seize an objective", (parent,)),
               Synset("n:4", "noun.act", ("lonely",), "no siblings here at all", ("n:9",))]
    records, misses = training.wordnet_triples(synsets, limit=10)
    by_id = {r["id"]: r for r in records}
    assert by_id["wordnet:n:2"]["negative"] == "an attack to seize an objective"
    assert by_id["wordnet:n:3"]["negative"] == "a sudden short attack"
    assert misses == 1


def test_bible_negative_is_the_nearest_other_verse():
    verses = [VersePair("Gen.1.1", "k1", "w1"), VersePair("Gen.1.2", "k2", "w2"), VersePair("Gen.1.5", "k5", "w5"),
              VersePair("Gen.2.1", "x", "y")]
    records, misses = training.bible_triples(verses, limit=10)
    by_id = {r["id"]: r for r in records}
    assert by_id["bible:Gen.1.1"]["negative"] == "w2"
    assert by_id["bible:Gen.1.5"]["negative"] == "w2"  # distance 3, nothing nearer
    assert by_id["bible:Gen.1.2"]["negative"] == "w1"
    assert "bible:Gen.2.1" not in by_id and misses == 1


def test_foldoc_negative_same_category_else_alphabetical_neighbour():
    terms = [Term("alpha", "language", "def alpha"), Term("beta", "language", "def beta"),
             Term("gamma", "", "def gamma"), Term("zeta", "", "def zeta")]
    by_id = {r["id"]: r for r in training.foldoc_triples(terms, limit=10)[0]}
    assert by_id["foldoc:alpha"]["negative"] == "def beta"
    assert by_id["foldoc:gamma"]["negative"] in ("def alpha", "def beta", "def zeta")
    assert by_id["foldoc:gamma"]["source"] == "foldoc" and by_id["foldoc:gamma"]["query"] == "gamma"


def test_make_triples_is_order_independent_and_respects_limit():
    pkgs = [_pkg(f"p{i}", "games" if i % 2 else "net") for i in range(30)]
    a, stats = training.make_triples({"debian": pkgs}, per_source=10)
    b, _ = training.make_triples({"debian": list(reversed(pkgs))}, per_source=10)
    assert a == b and len(a) == 10 and stats["debian"]["triples"] == 10


def _task(texts: list[str], keys_used: set[str], source: str = "debian") -> suite.Task:
    payload = {"queries": {"q-1": texts[0]}, "corpus": {f"d-{i}": t for i, t in enumerate(texts[1:])},
               "qrels": {"q-1": {"d-0": 1}}}
    return suite.Task("PoolattnTiny", "retrieval", "d", "i", source, "l", payload, keys_used)


def _record(name: str) -> dict[str, str]:
    return {"id": f"debian:{name}", "query": f"q {name}", "positive": f"p {name}", "negative": f"n {name}",
            "instruction": "instr", "source": "debian"}


def test_verify_accepts_disjoint_data():
    verify([_record("a")], [_task(["query text", "doc text"], {"debian:b"})])


def test_verify_rejects_shared_items_texts_and_budget_overruns():
    with pytest.raises(BuildError, match="items also in training"):
        verify([_record("a")], [_task(["query text", "doc text"], {"debian:a"})])
    with pytest.raises(BuildError, match="texts also in training"):
        verify([_record("a")], [_task(["query text", "p a"], {"debian:b"})])
    with pytest.raises(BuildError, match="exceeds the budget"):
        verify([], [_task(["q"] + ["x" * 500] * (suite.MAX_TEXTS + 1), set())])
    with pytest.raises(BuildError, match="empty"):
        verify([], [_task(["q", "  "], set())])
