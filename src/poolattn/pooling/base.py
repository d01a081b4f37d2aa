"""The pooling interface: hidden states + a mask of the tokens to pool over -> one vector per text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from poolattn.config import PoolingConfig


@dataclass(frozen=True)
class BackboneDims:
    """The few backbone facts a pooling head is sized from."""

    hidden_size: int
    num_layers: int
    num_attention_heads: int
    attention: str  # "causal" or "bidirectional"


def last_token_index(mask: Tensor) -> Tensor:
    """(B,) position of the last 1 in each row of a (B, T) mask, for either padding side.

    `h[:, -1]` is only right with left padding; this reads the mask instead.
    """
    length = mask.shape[1]
    return length - 1 - mask.flip(dims=[1]).to(torch.int64).argmax(dim=1)


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """(B, H) float32 mean of (B, T, H) `states` over the positions where the (B, T) `mask` is 1.

    Sums in float32 whatever the states' dtype, without a float32 copy of them: multiplying by 0 or 1 is exact in
    any dtype, so the result equals the mean of `states.float()` bit for bit.
    """
    keep = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
    total = (states * keep).sum(dim=1, dtype=torch.float32)
    return total / keep.sum(dim=1, dtype=torch.float32).clamp(min=1.0)


class Pooler(nn.Module):
    """Turns a backbone's hidden states into one (B, D) vector per text.

    `hidden_states` is the tuple HF returns with `output_hidden_states=True` (embeddings first, last layer last)
    when `uses_all_layers` is True, else a 1-tuple holding only the last layer's states. `mask` (B, T) marks the
    tokens to pool over: real tokens, minus instruction tokens when those are excluded. Poolers compute in
    float32: each casts only the states it reads (copying every layer of a bfloat16 backbone would be waste).
    Subclasses record their constructor arguments in `self.init_args` so a saved head can be rebuilt by name.
    """

    uses_all_layers: ClassVar[bool] = False
    init_args: dict[str, Any]

    @classmethod
    def sized_for(cls, config: PoolingConfig, dims: BackboneDims) -> dict[str, Any]:
        """Constructor arguments for a backbone with `dims` (parameter-free heads need only the width)."""
        return {"hidden_size": dims.hidden_size}

    @property
    def output_dim(self) -> int:
        return int(self.init_args["hidden_size"])

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError
