"""EOS-last-token pooling: the state of the EOS token appended to every text."""

from __future__ import annotations

import torch
from torch import Tensor

from poolattn.pooling.base import Pooler, last_token_index


class EosPooler(Pooler):
    """The final layer's state at the last real token, which is the EOS poolattn appends to every text.

    Under causal attention it is the only position that has seen the whole text (E5-Mistral, the paper's design 1).
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.init_args = {"hidden_size": hidden_size}

    def forward(self, hidden_states: tuple[Tensor, ...], mask: Tensor) -> Tensor:
        last = hidden_states[-1]  # (B, T, H)
        rows = torch.arange(last.shape[0], device=last.device)
        return last[rows, last_token_index(mask)].float()  # (B, H)
