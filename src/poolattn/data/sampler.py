"""Batches drawn from one source at a time, reshuffled every epoch from a fixed seed.

Batches that mix sources (Bible verses next to Debian packages) make in-batch negatives trivially easy; batches
from one source are harder and teach more. Each source's leftover records (fewer than a batch) are pooled into
mixed batches, and the last batch may be short: nothing is dropped. The order depends only on (seed, epoch), so
a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


class SourceBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices; `same_source=False` gives plain shuffled batches."""

    def __init__(self, sources: Sequence[str | None], batch_size: int, *, seed: int, same_source: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.sources = list(sources)
        self.batch_size = batch_size
        self.seed = seed
        self.same_source = same_source and len({s for s in self.sources}) > 1
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        if not self.same_source:
            order = list(range(len(self.sources)))
            rng.shuffle(order)
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        groups: dict[str | None, list[int]] = defaultdict(list)
        for index, source in enumerate(self.sources):
            groups[source].append(index)
        batches, leftovers = [], []
        for source in sorted(groups, key=str):
            members = groups[source]
            rng.shuffle(members)
            full = len(members) - len(members) % self.batch_size
            batches += [members[i : i + self.batch_size] for i in range(0, full, self.batch_size)]
            leftovers += members[full:]
        rng.shuffle(leftovers)
        batches += [leftovers[i : i + self.batch_size] for i in range(0, len(leftovers), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        if not self.same_source:
            return -(-len(self.sources) // self.batch_size)
        counts: dict[str | None, int] = defaultdict(int)
        for source in self.sources:
            counts[source] += 1
        full = sum(c // self.batch_size for c in counts.values())
        rest = sum(c % self.batch_size for c in counts.values())
        return full + -(-rest // self.batch_size)
