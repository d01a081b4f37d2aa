"""Truncation, dedup, the split rule and the hash-based ordering that replaces an RNG."""

from __future__ import annotations

import hashlib

import pytest

from poolattn.databuild import text
from poolattn.databuild.lexical import TfidfIndex


def test_truncate_cuts_at_a_word_boundary():
    words = "alpha beta gamma delta"
    assert text.truncate(words, 100) == words
    assert text.truncate(words, 16) == "alpha beta gamma"  # "alpha beta gamma d" would split a word
    assert text.truncate(words, 11) == "alpha beta"
    assert text.truncate("alpha, beta", 7) == "alpha"  # no dangling comma


def test_truncate_hard_cuts_a_single_long_word_and_normalises_space():
    assert text.truncate("x" * 50, 10) == "x" * 10
    assert text.truncate("  a \n\t b  ", 600) == "a b"
    with pytest.raises(ValueError, match="max_chars"):
        text.truncate("a", 0)


def test_truncate_never_exceeds_the_limit():
    sample = " ".join(f"w{i}" * (i % 7 + 1) for i in range(400))
    for limit in (5, 17, 100, 600):
        cut = text.truncate(sample, limit)
        assert 0 < len(cut) <= limit and sample.startswith(cut)


def test_dedup_keeps_first_and_counts_drops():
    items = ["Hello, world!", "hello world", "Other text", "HELLO   WORLD."]
    kept, dropped = text.dedup(items, text.dedup_key)
    assert kept == ["Hello, world!", "Other text"] and dropped == 2


def test_split_rule_is_sha1_mod_100():
    key = "debian:zsh"
    expected = int(hashlib.sha1(key.encode()).hexdigest()[:16], 16) % 100 < text.EVAL_PERCENT
    assert text.is_eval_key(key) is expected
    share = sum(text.is_eval_key(f"k{i}") for i in range(20000)) / 20000
    assert abs(share - text.EVAL_PERCENT / 100) < 0.01


def test_ranked_ignores_input_order_and_depends_on_salt():
    items = [f"item{i}" for i in range(50)]
    a = text.ranked(items, key=str, salt="s1")
    assert a == text.ranked(list(reversed(items)), key=str, salt="s1")
    assert a != text.ranked(items, key=str, salt="s2")
    assert sorted(a) == sorted(items)
    assert text.sample(items, 5, key=str, salt="s1") == a[:5]


def test_pick_is_reproducible_and_handles_empty():
    assert text.pick([], "x") is None
    choices = {text.pick(["a", "b", "c"], f"salt{i}") for i in range(40)}
    assert choices == {"a", "b", "c"}
    assert text.pick(["a", "b", "c"], "fixed") == text.pick(["a", "b", "c"], "fixed")


def test_tfidf_prefers_shared_rare_words():
    index = TfidfIndex(["the cat sat on the mat", "the dog ran", "a cat and a mat", "the the the"])
    assert set(index.top("cat mat", 2)) == {0, 2}
    assert index.top("cat mat", 1, exclude={0, 2}) == []  # nothing else shares a word
    assert index.top("dog", 1) == [1]
