"""Pooling heads behind one registry: a new head is one file and one line here."""

from __future__ import annotations

from poolattn.config import PoolingConfig
from poolattn.errors import InputError
from poolattn.pooling.base import BackboneDims, Pooler
from poolattn.pooling.eos import EosPooler
from poolattn.pooling.latent import LatentPooler
from poolattn.pooling.mean import MeanPooler
from poolattn.pooling.multilayer import MultiLayerPooler

POOLERS: dict[str, type[Pooler]] = {
    "eos": EosPooler,
    "mean": MeanPooler,
    "latent": LatentPooler,
    "multilayer": MultiLayerPooler,
}


def pooler_class(name: str) -> type[Pooler]:
    """The registered head called `name` (never a dotted path read from a file)."""
    if name not in POOLERS:
        raise InputError(f"unknown pooling {name!r}; choose one of {sorted(POOLERS)}")
    return POOLERS[name]


def build_pooler(config: PoolingConfig, dims: BackboneDims) -> Pooler:
    """A fresh head sized for the backbone; its `init_args` are what `Embedder.save` records."""
    cls = pooler_class(config.name)
    return cls(**cls.sized_for(config, dims))


__all__ = ["POOLERS", "BackboneDims", "Pooler", "build_pooler", "pooler_class"]
