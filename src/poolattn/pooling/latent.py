"""Last-layer trainable pooling: trainable latents cross-attend over the last layer's token states."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from poolattn.config import PoolingConfig
from poolattn.pooling.base import BackboneDims, Pooler, masked_mean
from poolattn.pooling.resampler import LatentResampler, ResidualStart, resampler_size


class LatentPooler(Pooler):
    """NV-Embed-style latent attention pooling (the paper's designs 2 and 4).

    Keys and values are every pooled token of the last layer (padding and, by default, instruction tokens are
    masked out), queries are the trainable latents; their mean after a feed-forward is the embedding. With
    `init="residual"` the head starts as mean pooling of the same tokens (see `ResidualStart`).
    """

    def __init__(
        self, hidden_size: int, *, num_latents: int, num_heads: int, head_dim: int, ff_mult: int, init: str = "paper"
    ) -> None:
        super().__init__()
        self.init_args = {"hidden_size": hidden_size, "num_latents": num_latents, "num_heads": num_heads,
                          "head_dim": head_dim, "ff_mult": ff_mult, "init": init}
        self.resampler = LatentResampler(
            hidden_size, hidden_size, num_latents=num_latents, num_heads=num_heads, head_dim=head_dim, ff_mult=ff_mult
        )
        self.start = ResidualStart(init, hidden_size)

    @classmethod
    def sized_for(cls, config: PoolingConfig, dims: BackboneDims) -> dict[str, Any]:
        return {"hidden_size": dims.hidden_size, **resampler_size(config, dims)}

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        last = hidden_states[-1].float()  # (B, T, H)
        resampled = self.resampler(last, key_mask=mask)  # (B, H): latents attend over the T pooled tokens
        return self.start(masked_mean(last, mask) if self.start.residual else None, resampled)
