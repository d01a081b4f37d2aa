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
    # character tokenizer: one token per character of the prefix, its trailing space included
    assert item.instruction_tokens == boundary == len("Instruct: Find it\nQuery: ")
    assert len(item.ids) == len(text) + 1


@pytest.mark.parametrize("exclude", [True, False])
def test_pool_mask_excludes_instruction_only_when_asked(exclude):
    features = _tok(exclude=exclude)(["hi"], ["Do"])
    n_instruction = len("Instruct: Do\nQuery: ")
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


def _bos_tokenizer():
    """The character tokenizer with a post-processor that puts BOS first, as Mistral's and Llama-2's do."""
    from tokenizers import processors

    tokenizer = char_tokenizer()
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", BOS)])
    return tokenizer


class _SlowView:
    """A tokenizer seen as a slow one (no character offsets), to exercise the re-tokenising fallback."""

    is_fast = False

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, texts, **kwargs):
        kwargs.pop("return_offsets_mapping", None)
        return self._tokenizer(texts, **kwargs)


BOS = 2


@pytest.mark.parametrize("slow", [False, True])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_bos_is_pooled_for_queries_as_for_documents(slow, padding_side):
    tokenizer = _bos_tokenizer()
    assert tokenizer("hi")["input_ids"][0] == BOS  # the fixture really adds BOS
    tok = TextTokenizer(_SlowView(tokenizer) if slow else tokenizer, max_length=64, padding_side=padding_side,
                        template=DEFAULT_INSTRUCTION_TEMPLATE, exclude_instruction=True)
    features = tok(["hi", "hi", "a longer text"], ["Find it", None, None])
    pooled = [ids[mask.bool()].tolist() for ids, mask in zip(features["input_ids"], features["pool_mask"])]
    document = [BOS] + tokenizer.convert_tokens_to_ids(list("hi")) + [EOS]
    assert pooled[1] == document                     # a document: BOS + text + EOS
    assert pooled[0] == document                     # the instructed query pools exactly the same tokens
    query_ids = features["input_ids"][0][features["attention_mask"][0].bool()].tolist()
    assert query_ids[0] == BOS and len(query_ids) == 1 + len("Instruct: Find it\nQuery: hi") + 1
