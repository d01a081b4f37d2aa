"""Causal vs bidirectional attention, proven by perturbation on every supported family.

Change the last real token of a text: under bidirectional attention the first token's state must change, under
causal attention it must not. Checked for sdpa and eager, left and right padding, and also that padding never
leaks in (a padded text equals the same text alone).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from poolattn.backbone.attention import UnsupportedAttentionError, attention_mode, set_attention
from tests.conftest import ALL_FAMILIES, tiny_config

LENGTHS = (7, 4)  # two texts; the second is padded


def _batch(padding_side: str, perturb: bool):
    torch.manual_seed(1)
    seqs = [torch.randint(3, 120, (n,)) for n in LENGTHS]
    if perturb:
        seqs[0] = seqs[0].clone()
        seqs[0][-1] = (seqs[0][-1] + 7) % 117 + 3
        seqs[1] = seqs[1].clone()
        seqs[1][-1] = (seqs[1][-1] + 7) % 117 + 3
    width = max(LENGTHS)
    ids = torch.ones(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, seq in enumerate(seqs):
        start = width - len(seq) if padding_side == "left" else 0
        ids[row, start : start + len(seq)] = seq
        mask[row, start : start + len(seq)] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, positions


def _first_real_states(model, padding_side: str, perturb: bool) -> torch.Tensor:
    ids, mask, positions = _batch(padding_side, perturb)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    first = mask.argmax(dim=1)  # first real position per row
    return hidden[torch.arange(len(ids)), first]  # (2, H)


def _model(tiny_dirs, family: str, impl: str, mode: str):
    model = AutoModel.from_pretrained(tiny_dirs[family], attn_implementation=impl, dtype=torch.float32).eval()
    return set_attention(model, mode)


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_perturbing_last_token_reaches_first_token_only_when_bidirectional(tiny_dirs, family, impl, padding_side):
    causal = _model(tiny_dirs, family, impl, "causal")
    before = _first_real_states(causal, padding_side, perturb=False)
    after = _first_real_states(causal, padding_side, perturb=True)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)

    bidirectional = _model(tiny_dirs, family, impl, "bidirectional")
    before = _first_real_states(bidirectional, padding_side, perturb=False)
    after = _first_real_states(bidirectional, padding_side, perturb=True)
    # both rows change: the long text (no padding in its row) and the padded one
    assert (after - before).abs().amax(dim=1).min() > 1e-3


@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_padding_never_leaks_into_real_tokens(tiny_dirs, family, impl, padding_side, mode):
    model = _model(tiny_dirs, family, impl, mode)
    ids, mask, positions = _batch(padding_side, perturb=False)
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        row = 1  # the padded text
        keep = mask[row].bool()
        alone = model(input_ids=ids[row, keep][None], attention_mask=mask[row, keep][None]).last_hidden_state
    torch.testing.assert_close(batched[row, keep], alone[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_causal_mode_reproduces_stock_hidden_states_exactly(tiny_dirs, family):
    stock = AutoModel.from_pretrained(tiny_dirs[family], dtype=torch.float32).eval()
    ours = set_attention(AutoModel.from_pretrained(tiny_dirs[family], dtype=torch.float32).eval(), "causal")
    ids, mask, positions = _batch("right", perturb=False)
    with torch.no_grad():
        expected = stock(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(expected, got)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_mode_is_read_back_from_config(tiny_dirs, family):
    model = _model(tiny_dirs, family, "sdpa", "bidirectional")
    assert attention_mode(model) == "bidirectional"
    assert attention_mode(set_attention(model, "causal")) == "causal"


def test_unverified_family_is_refused_with_its_model_type():
    from transformers import AutoModel as HFAutoModel

    model = HFAutoModel.from_config(tiny_config("phi3", pad_token_id=1))
    with pytest.raises(UnsupportedAttentionError, match="'phi3'.*supported"):
        set_attention(model, "bidirectional")
    assert set_attention(model, "causal") is model  # causal is every decoder's default
