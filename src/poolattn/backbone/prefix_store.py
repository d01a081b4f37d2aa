"""A byte-bounded LRU of per-text tensors: what the frozen layers of a backbone made of one text.

One store serves the whole process, so every model whose frozen layers are the same (same weights, dtype,
attention mode and kernel: see `backbone/prefix.py`) reuses the entries of the others: the designs of one
attention mode and seed in a study (training scopes its entries to its batch stream: `PrefixCache.scope`), and
the evaluation of every run. Keys hold the exact token ids; the rest of a key is a digest of everything else the
frozen layers depend on.

Sizes (SmolLM2-135M, hidden 576, float32): the state entering the first adapted layer is 2,304 bytes per token
(147 KB for a 64-token text); the multi-layer head's pooled vectors of 19 frozen hidden states (embeddings and
layers 1-18) are 43.8 KB per text whatever its length.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

# The default budget. Entry sizes measured by benchmarks/prefix_cache.py (SmolLM2-135M, float32, configs/demo.yaml):
# one attention mode's evaluation entries take 0.84 GB (the states of the suite's 235,579 tokens and the per-layer
# vectors of its 6,897 texts), one (attention mode, seed)'s training batches 0.47 GB (3,811 texts, 132,322 tokens).
# The study runs design by design, seed by seed, so with 3 seeds the entries still to be read again are at most one
# mode's evaluation entries and its 3 seeds' training entries: 2.3 GB, within 3 GiB; older entries go first.
DEFAULT_BUDGET_BYTES = 3 * 2**30


def entry_bytes(key: Hashable, value: Tensor) -> int:
    """Bytes an entry holds: the tensor's storage plus 8 per token id in its key (a Python int per id)."""
    ids = next((part for part in key if isinstance(part, tuple)), ()) if isinstance(key, tuple) else ()
    return value.numel() * value.element_size() + 8 * len(ids)


@dataclass
class StoreStats:
    """Counters of one store since it was made (or last cleared)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0
    peak_bytes: int = 0


class PrefixStore:
    """An LRU map key -> tensor holding at most `budget_bytes` (the least recently used entries go first).

    Values are stored detached and outside inference mode, so an entry made while encoding can feed training.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes={budget_bytes} must be >= 0")
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Hashable, tuple[Tensor, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = StoreStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> Tensor | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return found[0]

    def put(self, key: Hashable, value: Tensor) -> None:
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                value = value.detach().clone()
        else:
            value = value.detach().clone()
        size = entry_bytes(key, value)
        if size > self.budget_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.stats.bytes -= old[1]
            self._entries[key] = (value, size)
            self.stats.bytes += size
            while self.stats.bytes > self.budget_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.stats.bytes -= dropped
                self.stats.evictions += 1
            self.stats.entries = len(self._entries)
            self.stats.peak_bytes = max(self.stats.peak_bytes, self.stats.bytes)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.stats = StoreStats()


_SHARED: PrefixStore | None = None


def shared_store() -> PrefixStore:
    """The process-wide store every `Embedder` with `prefix_cache: auto` uses."""
    global _SHARED
    if _SHARED is None:
        _SHARED = PrefixStore()
    return _SHARED
