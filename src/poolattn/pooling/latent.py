"""Last-layer trainable pooling: trainable latents cross-attend over the last layer's token states."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from poolattn.config import PoolingConfig
from poolattn.pooling.base import BackboneDims, Pooler
from poolattn.pooling.resampler import LatentResampler, resampler_size


class LatentPooler(Pooler):
    """NV-Embed-style latent attention pooling (the paper's designs 2 and 4).

    Keys and values are every pooled token of the last layer (padding and, by default, instruction tokens are
    masked out), queries are the trainable latents; their mean after a feed-forward is the embedding.
    """

    def __init__(
        self, hidden_size: int, *, num_latents: int, num_heads: int, head_dim: int, ff_mult: int
    ) -> None:
        super().__init__()
        self.init_args = {"hidden_size": hidden_size, "num_latents": num_latents, "num_heads": num_heads,
                          "head_dim": head_dim, "ff_mult": ff_mult}
        self.resampler = LatentResampler(
            hidden_size, hidden_size, num_latents=num_latents, num_heads=num_heads, head_dim=head_dim, ff_mult=ff_mult
        )

    @classmethod
    def sized_for(cls, config: PoolingConfig, dims: BackboneDims) -> dict[str, Any]:
        return {"hidden_size": dims.hidden_size, **resampler_size(config, dims)}

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        return self.resampler(hidden_states[-1].float(), key_mask=mask)  # (B, H): latents attend over T tokens
