"""`pooling.init: residual`: a trainable head that starts exactly at its fixed counterpart and learns a correction."""

from __future__ import annotations

import pytest
import torch

from poolattn.config import ConfigError, PoolingConfig
from poolattn.model import Embedder
from poolattn.pooling import build_pooler
from poolattn.pooling.base import BackboneDims, last_token_index, masked_mean

H, LAYERS = 16, 3
CASES = [(name, mode) for name in ("latent", "multilayer") for mode in ("causal", "bidirectional")]


def _head(name: str, mode: str, init: str = "residual"):
    torch.manual_seed(0)
    dims = BackboneDims(hidden_size=H, num_layers=LAYERS, num_attention_heads=4, attention=mode)
    return build_pooler(PoolingConfig(name=name, num_latents=4, ff_mult=1, init=init), dims)


def _batch(padding_side: str = "right"):
    gen = torch.Generator().manual_seed(1)
    lengths, width = [5, 3, 1], 5
    states = torch.randn(LAYERS + 1, len(lengths), width, H, generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        start = width - n if padding_side == "left" else 0
        mask[row, start:start + n] = 1
    return tuple(states), mask


def _counterpart(name: str, mode: str, states, mask):
    last = states[-1]
    if name == "multilayer" and mode == "causal":  # the last layer's last real token: EOS pooling, design 1
        return last[torch.arange(last.shape[0]), last_token_index(mask)]
    return masked_mean(last, mask)


@pytest.mark.parametrize("name,mode", CASES)
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_an_untrained_residual_head_is_exactly_its_fixed_counterpart(name, mode, padding_side):
    states, mask = _batch(padding_side)
    out = _head(name, mode)(states, mask)
    torch.testing.assert_close(out, _counterpart(name, mode, states, mask), rtol=0, atol=0)
    paper = _head(name, mode, init="paper")(states, mask)
    assert (paper - out).abs().max() > 0.1  # the published random start is something else


@pytest.mark.parametrize("name,mode", CASES)
def test_the_residual_head_learns_from_the_first_step(name, mode):
    head = _head(name, mode)
    states, mask = _batch()
    target = torch.randn(3, H, generator=torch.Generator().manual_seed(2))
    loss = ((head(states, mask) - target) ** 2).sum()
    loss.backward()
    assert head.start.delta.weight.grad.abs().max() > 0  # the correction gets a gradient at step 0
    before = head(states, mask).detach()
    torch.optim.SGD(head.parameters(), lr=1e-3).step()
    after = head(states, mask).detach()
    assert (after - before).abs().max() > 1e-4
    assert ((after - target) ** 2).sum() < ((before - target) ** 2).sum()


def test_a_residual_head_is_saved_and_loaded_as_residual(tiny_llama, tmp_path):
    model = Embedder.from_design(3, str(tiny_llama), device="cpu", pooling={"init": "residual", "num_latents": 4})
    with torch.no_grad():
        model.pooler.start.delta.weight.normal_()  # a trained-looking correction
    model.save(tmp_path / "m")
    loaded = Embedder.load(tmp_path / "m", device="cpu", backbone=str(tiny_llama))
    assert loaded.pooler.init_args["init"] == "residual"
    texts = ["a cat", "the stock market fell sharply"]
    torch.testing.assert_close(torch.from_numpy(loaded.encode(texts)), torch.from_numpy(model.encode(texts)))


def test_an_unknown_init_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"pooling.init='zeros'.*'paper', 'residual'"):
        PoolingConfig(name="latent", init="zeros")
