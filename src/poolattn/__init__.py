"""poolattn: decoder LLMs as text embedding models, and the experiment that says which design works best.

The public surface stays small: `Embedder` (build, encode, save, load), `Config` and `load_config`, `get_design`,
`to_mteb` (an Embedder as an mteb encoder).
"""

from __future__ import annotations

from poolattn.version import __version__

__all__ = ["Config", "Embedder", "get_design", "load_config", "to_mteb", "__version__"]


def __getattr__(name: str):
    # Lazy, so `poolattn --help` and config tooling do not import torch (~3 s; `import poolattn` alone: ms).
    if name == "Embedder":
        from poolattn.model import Embedder

        return Embedder
    if name in ("Config", "load_config"):
        from poolattn import config

        return getattr(config, name)
    if name == "to_mteb":
        from poolattn.evaluation.mteb import to_mteb

        return to_mteb
    if name == "get_design":
        from poolattn.designs import get_design

        return get_design
    raise AttributeError(f"module 'poolattn' has no attribute {name!r}")
