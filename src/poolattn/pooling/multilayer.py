"""Multi-layers trainable pooling: one vector per transformer layer, read by trainable latents.

The paper's proposal (designs 3 and 5). Each selected layer is summarised by one vector: the last real token's
state under causal attention (the only position that saw the whole text), the masked mean under bidirectional
attention. Intermediate layers are the pre-norm residual stream, whose norms dwarf the final normed layer's, so
every layer vector is scaled to unit RMS before a learned layer-position embedding is added. The latents then
cross-attend over the L layer vectors (L keys, not one). With `init="residual"` the head starts as the last
selected layer's summary (under causal attention with the last layer, exactly EOS pooling: design 1) and learns a
zero-initialised correction from all the layers (see `ResidualStart`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from poolattn.config import PoolingConfig
from poolattn.errors import InputError
from poolattn.pooling.base import BackboneDims, Pooler, last_token_index, masked_mean
from poolattn.pooling.resampler import LatentResampler, ResidualStart, resampler_size


def resolve_layers(layers: list[int] | None, num_layers: int) -> list[int]:
    """1-based layer numbers into HF's hidden_states tuple (0 is the embedding output); negatives from the end."""
    if layers is None:
        return list(range(1, num_layers + 1))
    out = [i + num_layers + 1 if i < 0 else i for i in layers]
    bad = [layer for layer, i in zip(layers, out) if not 0 <= i <= num_layers]
    if bad:
        raise InputError(f"pooling.layers has {bad}: the backbone has hidden states 0..{num_layers} (0 = embeddings)")
    return out


def default_layer_summary(attention: str) -> str:
    """`layer_summary: auto`: the last real token under causal attention, the masked mean under bidirectional."""
    return "last" if attention == "causal" else "mean"


def summarize_layer(states: Tensor, mask: Tensor, summary: str) -> Tensor:
    """(B, H) float32 summary of one layer's (B, T, H) states: the last pooled token ("last") or the masked mean."""
    if summary == "last":
        rows = torch.arange(mask.shape[0], device=mask.device)
        return states[rows, last_token_index(mask)].float()
    return masked_mean(states, mask)


class MultiLayerPooler(Pooler):
    """Cross-attention of trainable latents over one unit-RMS vector per layer plus a layer-position embedding."""

    uses_all_layers = True

    def __init__(
        self,
        hidden_size: int,
        *,
        layers: list[int],
        layer_summary: str,
        num_latents: int,
        num_heads: int,
        head_dim: int,
        ff_mult: int,
        init: str = "paper",
    ) -> None:
        super().__init__()
        if layer_summary not in ("last", "mean"):
            raise ValueError(f"layer_summary={layer_summary!r}; choose 'last' or 'mean'")
        self.init_args = {"hidden_size": hidden_size, "layers": list(layers), "layer_summary": layer_summary,
                          "num_latents": num_latents, "num_heads": num_heads, "head_dim": head_dim, "ff_mult": ff_mult,
                          "init": init}
        self.layers = list(layers)
        self.layer_summary = layer_summary
        self.layer_position = nn.Parameter(torch.randn(len(layers), hidden_size) * 0.1)
        self.resampler = LatentResampler(
            hidden_size, hidden_size, num_latents=num_latents, num_heads=num_heads, head_dim=head_dim, ff_mult=ff_mult
        )
        self.start = ResidualStart(init, hidden_size)

    @classmethod
    def sized_for(cls, config: PoolingConfig, dims: BackboneDims) -> dict[str, Any]:
        summary = config.layer_summary
        if summary == "auto":
            summary = default_layer_summary(dims.attention)
        return {"hidden_size": dims.hidden_size, "layers": resolve_layers(config.layers, dims.num_layers),
                "layer_summary": summary, **resampler_size(config, dims)}

    def summarize(self, states: Tensor, mask: Tensor) -> Tensor:
        """(B, H) float32 summary of one layer's (B, T, H) states: last pooled token, or masked mean."""
        return summarize_layer(states, mask, self.layer_summary)

    def combine(self, stacked: Tensor) -> Tensor:
        """(B, D) from the (B, L, H) layer summaries; `summarize` and `combine` let a frozen layer's summary be cached."""
        normed = F.normalize(stacked, dim=-1) * stacked.shape[-1] ** 0.5  # unit RMS per layer
        resampled = self.resampler(normed + self.layer_position)  # (B, H): latents attend over L layer vectors
        return self.start(stacked[:, -1], resampled)  # the last selected layer's summary under init="residual"

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        vectors = [self.summarize(hidden_states[i], mask) for i in self.layers]  # L x (B, H)
        return self.combine(torch.stack(vectors, dim=1))  # (B, L, H) -> (B, H)
