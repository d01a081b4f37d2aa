"""Losses take embeddings, never the model, so `ContrastiveStep` (grad_cache.py) can wrap any of them."""

from __future__ import annotations

from torch import nn

from poolattn.errors import InputError
from poolattn.losses.grad_cache import ContrastiveStep, NonFiniteLossError, StepResult
from poolattn.losses.info_nce import InfoNCELoss

LOSSES: dict[str, type[nn.Module]] = {"info_nce": InfoNCELoss}


def build_loss(name: str, **kwargs) -> nn.Module:
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)


__all__ = ["LOSSES", "ContrastiveStep", "InfoNCELoss", "NonFiniteLossError", "StepResult", "build_loss"]
