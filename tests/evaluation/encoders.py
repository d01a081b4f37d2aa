"""Two cheap deterministic encoders for evaluation tests.

`HashingEncoder` is a bag-of-words model (each lowercase word hashed to a signed bucket): crude, but it really
matches words, so on the fixture suite it must beat `RandomEncoder`. `RecordingEncoder` wraps it and remembers
every call, so tests can check which texts got which instruction.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FIXTURE_SUITE = Path(__file__).parent / "fixtures" / "suite"


class HashingEncoder:
    """Signed bag-of-words hashing into `dim` buckets, L2-normalised; ignores instructions."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = "hashing-bow"

    def encode(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        show_progress: bool = True,
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = zlib.crc32(word.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


class RecordingEncoder(HashingEncoder):
    """A HashingEncoder that records (texts, instruction) of every encode call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def encode(self, texts: Sequence[str], *, instruction: str | None = None, **kwargs) -> np.ndarray:
        self.calls.append((tuple(texts), instruction))
        return super().encode(texts, instruction=instruction, **kwargs)
