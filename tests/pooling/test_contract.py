"""Contract tests run over every registered pooler: a new head is tested from the day it is registered."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from poolattn.config import PoolingConfig
from poolattn.pooling import POOLERS, BackboneDims, build_pooler, pooler_class
from poolattn.pooling.base import last_token_index, masked_mean

H, LAYERS = 16, 3
DIMS = {mode: BackboneDims(hidden_size=H, num_layers=LAYERS, num_attention_heads=4, attention=mode)
        for mode in ("causal", "bidirectional")}
CASES = [(name, mode) for name in sorted(POOLERS) for mode in ("causal", "bidirectional")]


def _pooler(name: str, mode: str):
    torch.manual_seed(0)
    config = PoolingConfig(name=name, num_latents=4, ff_mult=1)
    pooler = build_pooler(config, DIMS[mode])
    return pooler.eval()


def _states(lengths, padding_side: str, seed: int = 0, pad_value: float | None = None):
    """Per-layer hidden states (LAYERS + 1 tensors of (B, T, H)) and a mask, text content fixed by `seed`."""
    gen = torch.Generator().manual_seed(seed)
    texts = [torch.randn(LAYERS + 1, n, H, generator=gen) for n in lengths]
    width = max(lengths)
    states = torch.randn(LAYERS + 1, len(lengths), width, H, generator=gen) * 100  # garbage in padding
    if pad_value is not None:
        states.fill_(pad_value)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, (n, text) in enumerate(zip(lengths, texts)):
        start = width - n if padding_side == "left" else 0
        states[:, row, start : start + n] = text
        mask[row, start : start + n] = 1
    return tuple(states), mask


@pytest.mark.parametrize("name,mode", CASES)
def test_output_shape_and_dtype(name, mode):
    pooler = _pooler(name, mode)
    states, mask = _states([5, 3], "right")
    out = pooler(states, mask)
    assert out.shape == (2, pooler.output_dim) and out.dtype == torch.float32


@pytest.mark.parametrize("name,mode", CASES)
def test_padding_side_does_not_change_the_result(name, mode):
    pooler = _pooler(name, mode)
    right = pooler(*_states([5, 3, 1], "right"))
    left = pooler(*_states([5, 3, 1], "left"))
    torch.testing.assert_close(left, right, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,mode", CASES)
def test_pad_positions_states_are_ignored(name, mode):
    pooler = _pooler(name, mode)
    a = pooler(*_states([6, 2], "right", pad_value=0.0))
    b = pooler(*_states([6, 2], "right", pad_value=1e4))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,mode", CASES)
def test_one_text_alone_equals_it_inside_a_padded_batch(name, mode):
    pooler = _pooler(name, mode)
    states, mask = _states([6, 2, 4], "right")
    batched = pooler(states, mask)
    for row in range(3):
        keep = mask[row].bool()
        alone = pooler(tuple(s[row : row + 1, keep] for s in states), mask[row : row + 1, keep])
        torch.testing.assert_close(alone[0], batched[row], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,mode", CASES)
def test_different_texts_give_different_vectors(name, mode):
    """Negative control for the invariance tests: the pooler does look at the text."""
    pooler = _pooler(name, mode)
    a = pooler(*_states([5, 3], "right", seed=0))
    b = pooler(*_states([5, 3], "right", seed=1))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("name,mode", CASES)
def test_save_load_round_trip_by_registry_name(name, mode, tmp_path):
    pooler = _pooler(name, mode)
    state = pooler.state_dict()
    if state:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "p.safetensors"))
    rebuilt = pooler_class(name)(**pooler.init_args).eval()
    if state:
        rebuilt.load_state_dict(load_file(str(tmp_path / "p.safetensors")))
    states, mask = _states([4, 2], "left")
    assert torch.equal(rebuilt(states, mask), pooler(states, mask))


@pytest.mark.parametrize("name,mode", CASES)
def test_gradient_reaches_every_trainable_parameter(name, mode):
    pooler = _pooler(name, mode).train()
    states, mask = _states([5, 3], "right")
    states = tuple(s.requires_grad_() for s in states)
    pooler(states, mask).pow(2).sum().backward()
    for pname, param in pooler.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname
    assert states[-1].grad.abs().sum() > 0  # and to the backbone


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_last_token_index_for_both_padding_sides(padding_side):
    _, mask = _states([5, 3, 1], padding_side)
    expected = [4, 2, 0] if padding_side == "right" else [4, 4, 4]
    assert last_token_index(mask).tolist() == expected


def test_mean_matches_a_hand_written_loop():
    pooler = _pooler("mean", "causal")
    states, mask = _states([5, 3], "left")
    mask[0, 0] = 0  # an excluded (instruction) token inside the text
    out = pooler(states, mask)
    for row in range(2):
        picked = [states[-1][row, t] for t in range(mask.shape[1]) if mask[row, t]]
        torch.testing.assert_close(out[row], torch.stack(picked).mean(0))


def test_eos_reads_the_last_real_token():
    pooler = _pooler("eos", "causal")
    states, mask = _states([5, 3], "right")
    out = pooler(states, mask)
    torch.testing.assert_close(out, torch.stack([states[-1][0, 4], states[-1][1, 2]]))


def test_multilayer_summary_follows_attention_mode():
    assert _pooler("multilayer", "causal").layer_summary == "last"
    assert _pooler("multilayer", "bidirectional").layer_summary == "mean"
    assert _pooler("multilayer", "causal").layers == [1, 2, 3]  # every transformer layer, not the embeddings


def test_multilayer_reads_every_selected_layer():
    pooler = _pooler("multilayer", "bidirectional")
    states, mask = _states([4, 2], "right")
    base = pooler(states, mask)
    for layer in pooler.layers:
        changed = list(states)
        changed[layer] = changed[layer] + torch.randn_like(changed[layer])
        assert (pooler(tuple(changed), mask) - base).abs().max() > 1e-4, layer
    ignored = list(states)
    ignored[0] = ignored[0] * 3  # the embedding output is not a selected layer
    torch.testing.assert_close(pooler(tuple(ignored), mask), base)


def test_unknown_pooling_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown pooling 'cls_token'; choose one of \['eos', 'latent'"):
        pooler_class("cls_token")


def _expected_paper_head(d: int, layers: int, multilayer: bool) -> int:
    """The published head written out by hand: 768 latents, 32 heads x 2048, GEGLU x4, pre-norms."""
    inner = 32 * 2048
    latents = 768 * d
    norms = 3 * 2 * d  # latents, context, feed-forward: weight + bias each
    attention = d * inner + d * 2 * inner + inner * d  # to_q, to_kv, to_out (no biases)
    feed_forward = (d * 8 * d + 8 * d) + (4 * d * d + d)  # GEGLU in (x4, doubled) and out, with biases
    positions = layers * d if multilayer else 0
    return latents + norms + attention + feed_forward + positions


@pytest.mark.parametrize("name", ["latent", "multilayer"])
def test_paper_preset_parameter_count_for_a_7b_shaped_backbone(name):
    dims = BackboneDims(hidden_size=4096, num_layers=32, num_attention_heads=32, attention="bidirectional")
    with torch.device("meta"):  # count without allocating 5 GB
        pooler = build_pooler(PoolingConfig(name=name, preset="paper"), dims)
    count = sum(p.numel() for p in pooler.parameters())
    assert count == _expected_paper_head(4096, 32, name == "multilayer")
    assert 1.27e9 < count < 1.29e9  # "1.28B parameters for a 7B model"


def test_the_mean_of_bfloat16_states_equals_the_mean_of_their_float32_copy():
    torch.manual_seed(0)
    states = (torch.randn(4, 9, 32) * 5).bfloat16()
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[2, 3:] = 0
    got = masked_mean(states, mask)
    assert got.dtype == torch.float32
    assert torch.equal(got, masked_mean(states.float(), mask))
