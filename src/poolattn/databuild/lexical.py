"""Lexical nearest neighbours (TF-IDF cosine), for evaluation distractors that share wording.

Some pairs are near-trivial for any embedder when the distractors are merely neighbours (two Bible
translations of one verse share most content words). Parallel passages and formulaic repeats - the
texts most similar in wording - make the task discriminate again. Pure Python, deterministic.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.lower()))


class TfidfIndex:
    """Cosine similarity between a query and every document, with idf from the documents."""

    def __init__(self, documents: Sequence[str]) -> None:
        counts = [_terms(d) for d in documents]
        df: Counter[str] = Counter(t for c in counts for t in c)
        n = len(documents)
        self.idf = {t: math.log((1 + n) / (1 + f)) + 1.0 for t, f in df.items()}
        self.postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, c in enumerate(counts):
            vec = self._weigh(c)
            for t, w in vec.items():
                self.postings[t].append((i, w))

    def _weigh(self, counts: Counter[str]) -> dict[str, float]:
        vec = {t: (1 + math.log(f)) * self.idf.get(t, 0.0) for t, f in counts.items()}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {t: w / norm for t, w in vec.items() if w > 0}

    def top(self, query: str, k: int, exclude: set[int] = frozenset()) -> list[int]:
        """Indices of the `k` most similar documents (ties by index), skipping `exclude`."""
        scores: dict[int, float] = defaultdict(float)
        for t, w in self._weigh(_terms(query)).items():
            for i, dw in self.postings.get(t, ()):
                scores[i] += w * dw
        ranked = sorted((i for i in scores if i not in exclude), key=lambda i: (-round(scores[i], 12), i))
        return ranked[:k]
