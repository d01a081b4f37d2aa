"""The model: `Embedder` (embedder.py), its saved folder format (folder.py), the model card (card.py), and the
sentence-transformers export (export.py, st_module.py).

Only the embedder is imported here: export.py and st_module.py import sentence-transformers, which loading or
training a model does not need.
"""

from __future__ import annotations

from poolattn.model.embedder import (CONVERT_TO, DEFAULT_QUERY_INSTRUCTION, Embedder, length_batches,
                                     resolve_model)
from poolattn.model.folder import ADAPTER_DIR, CONFIG_FILE, FORMAT_VERSION, MERGED_DIR, POOLER_FILE

__all__ = [
    "ADAPTER_DIR", "CONFIG_FILE", "CONVERT_TO", "DEFAULT_QUERY_INSTRUCTION", "Embedder",
    "FORMAT_VERSION", "MERGED_DIR", "POOLER_FILE", "length_batches", "resolve_model",
]
