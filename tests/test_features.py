"""Tokenisation: explicit EOS, truncation, instruction masking, padding sides, bad input."""

from __future__ import annotations

import pytest

from poolattn.config import DEFAULT_INSTRUCTION_TEMPLATE
from poolattn.features import TextTokenizer, format_query
from tests.conftest import char_tokenizer

EOS = 1


def _tok(padding_side="right", max_length=64, exclude=True):
    return TextTokenizer(char_tokenizer(), max_length=max_length, padding_side=padding_side,
                         template=DEFAULT_INSTRUCTION_TEMPLATE, exclude_instruction=exclude)


def test_eos_is_appended_and_an_empty_text_is_eos_only():
    items = _tok().tokenize(["ab", ""])
    assert items[0].ids[-1] == EOS and len(items[0].ids) == 3
    assert items[1].ids == [EOS]


def test_truncation_keeps_room_for_eos_and_is_reported():
    items = _tok(max_length=5).tokenize(["abcdefgh", "abc"])
    assert [len(i.ids) for i in items] == [5, 4]
    assert items[0].ids[-1] == EOS
    assert [i.truncated for i in items] == [True, False]


def test_instruction_tokens_are_counted_from_offsets():
    text, boundary = format_query("hi", "Find it", DEFAULT_INSTRUCTION_TEMPLATE)
    assert text == "Instruct: Find it\nQuery: hi"
    item = _tok().tokenize(["hi"], ["Find it"])[0]
    # character tokenizer: one token per character of the prefix up to "Query:" (the trailing space is text)
    assert item.instruction_tokens == boundary == len("Instruct: Find it\nQuery:")
    assert len(item.ids) == len(text) + 1


@pytest.mark.parametrize("exclude", [True, False])
def test_pool_mask_excludes_instruction_only_when_asked(exclude):
    features = _tok(exclude=exclude)(["hi"], ["Do"])
    n_instruction = len("Instruct: Do\nQuery:")
    assert features["attention_mask"].sum() == features["input_ids"].shape[1]
    expected = features["attention_mask"].sum() - (n_instruction if exclude else 0)
    assert features["pool_mask"].sum() == expected


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_padding_side_and_positions(padding_side):
    features = _tok(padding_side)(["abcd", "a"])
    mask = features["attention_mask"]
    assert mask.tolist() == ([[1] * 5, [0, 0, 0, 1, 1]] if padding_side == "left" else [[1] * 5, [1, 1, 0, 0, 0]])
    real_positions = features["position_ids"][1][mask[1].bool()]
    assert real_positions.tolist() == [0, 1]  # same positions whatever the padding side
    assert (features["pool_mask"] <= mask).all()


def test_pad_equal_to_eos_keeps_the_real_eos_in_the_mask():
    tok = _tok()
    assert tok.pad_id == tok.eos_id  # the char tokenizer has no pad token: EOS stands in, as for SmolLM2
    features = tok(["abc", "a"])
    assert features["attention_mask"][1].tolist() == [1, 1, 0, 0]  # real EOS at index 1 is kept


@pytest.mark.parametrize("bad,index", [(["ok", None], 1), ([3, "ok"], 0)])
def test_non_string_item_names_its_index(bad, index):
    with pytest.raises(TypeError, match=rf"texts\[{index}\]"):
        _tok().tokenize(bad)


def test_a_bare_string_is_refused():
    with pytest.raises(TypeError, match="single string"):
        _tok().tokenize("hello")
