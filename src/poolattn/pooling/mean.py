"""Mean pooling over the real (non-instruction) tokens of the last layer."""

from __future__ import annotations

from torch import Tensor

from poolattn.pooling.base import Pooler, masked_mean


class MeanPooler(Pooler):
    """Average of the final layer over the pooled tokens, so padding never shifts the result."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.init_args = {"hidden_size": hidden_size}

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        return masked_mean(hidden_states[-1].float(), mask)  # (B, H)
