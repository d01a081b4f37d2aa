"""Records -> tokenised (unpadded) texts for `ContrastiveStep`, which pads per length-sorted chunk."""

from __future__ import annotations

from collections.abc import Sequence

from poolattn.data.records import Record
from poolattn.features import TextTokenizer


class TripletCollator:
    """Queries get their instruction (E5 form); positives and negatives get none, as documents at test time."""

    def __init__(self, tokenizer: TextTokenizer) -> None:
        self.tokenizer = tokenizer
        self.texts = 0
        self.truncated = 0  # counted, so the run can report how many texts max_length cut (in this process)

    def __call__(self, records: Sequence[Record]) -> dict:
        negatives, owner = [], []
        for row, record in enumerate(records):
            negatives += record.negatives
            owner += [row] * len(record.negatives)
        batch = {
            "queries": self.tokenizer.tokenize([r.query for r in records], [r.instruction for r in records]),
            "positives": self.tokenizer.tokenize([r.positive for r in records]),
            "negatives": self.tokenizer.tokenize(negatives) if negatives else [],
            "negative_owner": owner,
            "ids": [r.id for r in records],
        }
        texts = [*batch["queries"], *batch["positives"], *batch["negatives"]]
        self.texts += len(texts)
        self.truncated += sum(t.truncated for t in texts)
        return batch
