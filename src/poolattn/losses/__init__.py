"""Losses take embeddings, never the model, so the training step (training/step.py) can wrap any of them."""

from __future__ import annotations

from torch import nn

from poolattn.errors import InputError
from poolattn.losses.global_batch import global_batch_loss, text_keys
from poolattn.losses.info_nce import InfoNCELoss

LOSSES: dict[str, type[nn.Module]] = {"info_nce": InfoNCELoss}


def build_loss(name: str, **kwargs) -> nn.Module:
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)


__all__ = ["LOSSES", "InfoNCELoss", "build_loss", "global_batch_loss", "text_keys"]
