"""The resampler's shared-query, mean-first form against the textbook form it rewrites."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from poolattn.pooling.resampler import LatentResampler


def textbook(r: LatentResampler, context: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Every latent of every text through attention and feed-forward, written with explicit softmax, then averaged."""
    batch, heads, d = context.shape[0], r.num_heads, r.head_dim
    x = r.latents.unsqueeze(0).repeat(batch, 1, 1)  # (B, L, D): one copy of the latents per text
    q = r.to_q(r.norm_latents(x)).view(batch, -1, heads, d).transpose(1, 2)
    k, v = (t.view(batch, -1, heads, d).transpose(1, 2) for t in r.to_kv(r.norm_context(context)).chunk(2, dim=-1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (B, heads, L, N)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, x.shape[1], -1)
    x = x + r.to_out(out)
    widen, _, narrow = r.ff
    value, gate = widen(r.norm_ff(x)).chunk(2, dim=-1)
    x = x + narrow(value * F.gelu(gate))  # the feed-forward on every latent
    return x.mean(dim=1)


@pytest.mark.parametrize("masked", [False, True])
def test_the_resampler_equals_every_latent_through_every_block_then_the_mean(masked):
    torch.manual_seed(0)
    r = LatentResampler(24, 24, num_latents=5, num_heads=3, head_dim=4, ff_mult=2).double()
    for p in r.parameters():  # off the default init, so no term is trivially zero
        p.data.add_(0.1 * torch.randn_like(p))
    context = torch.randn(4, 7, 24, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[1, 5:] = 0
    mask[3, :2] = 0
    key_mask = mask if masked else None
    weights = torch.randn(4, 24, dtype=torch.float64)

    got = r(context, key_mask=key_mask)
    want = textbook(r, context, key_mask)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    grads = torch.autograd.grad((got * weights).sum(), [context, *r.parameters()])
    want_grads = torch.autograd.grad((want * weights).sum(), [context, *r.parameters()])
    for name, a, b in zip(["context", *(n for n, _ in r.named_parameters())], grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")
