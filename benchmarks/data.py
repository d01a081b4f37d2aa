"""The texts every contender sees: deterministic samples of the bundled training set, cut to fit max length.

Fairness rests on identical tokens. poolattn appends EOS to every text itself; sentence-transformers gets the
tokenizer's `eos_token` string appended to each text, which the tokenizer turns into the same EOS id. Neither side
may truncate, or one would drop its EOS and the other would not: so every text is cut here, at a token boundary,
to at most max_length - 1 tokens (one is left for EOS). `token_match` then checks, text by text, that both
tokenisations give the same ids.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from poolattn.data.records import Record, bundled_training_set
from poolattn.features import format_query


def fit_text(tokenizer: Any, text: str, limit: int) -> str:
    """`text` cut at a token boundary so it tokenises to at most `limit` tokens (special tokens included)."""
    encoded = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    if len(encoded["input_ids"]) <= limit:
        return text
    ends = [end for _, end in encoded["offset_mapping"] if end > 0]
    keep = limit
    while keep > 0:
        cut = text[: ends[min(keep, len(ends)) - 1]]
        if len(tokenizer(cut, add_special_tokens=True)["input_ids"]) <= limit:
            return cut
        keep -= 1  # a cut inside a word can re-tokenise into more pieces: step back one token
    raise ValueError(f"cannot fit {text[:40]!r} into {limit} tokens")


def sample_records(count: int, *, seed: int = 0) -> list[Record]:
    """`count` records with exactly one hard negative, drawn across all sources (so every batch mixes lengths)."""
    dataset = bundled_training_set()
    rng = random.Random(seed)
    out: list[Record] = []
    for index in rng.sample(range(len(dataset)), len(dataset)):
        record = dataset[index]
        if len(record.negatives) == 1:
            out.append(record)
            if len(out) == count:
                return out
    raise ValueError(f"the bundled set has fewer than {count} records with one negative")


def fit_records(records: Sequence[Record], tokenizer: Any, *, max_length: int, template: str) -> list[Record]:
    """Records whose formatted query, positive and negative each fit max_length - 1 tokens."""
    limit = max_length - 1
    out = []
    for record in records:
        prefix = format_query("x", record.instruction, template)[0][:-1]  # the instruction part, exactly
        query = fit_text(tokenizer, prefix + record.query, limit)
        if len(query) <= len(prefix):
            raise ValueError(f"max_length={max_length} leaves no room for the query after its instruction")
        out.append(replace(
            record,
            query=query[len(prefix):],
            positive=fit_text(tokenizer, record.positive, limit),
            negatives=[fit_text(tokenizer, text, limit) for text in record.negatives],
        ))
    return out


def st_columns(records: Sequence[Record], eos_token: str, template: str) -> list[list[str]]:
    """(anchor, positive, negative) columns for sentence-transformers: the texts poolattn sees, plus EOS."""
    anchors = [format_query(r.query, r.instruction, template)[0] + eos_token for r in records]
    positives = [r.positive + eos_token for r in records]
    negatives = [r.negatives[0] + eos_token for r in records]
    return [anchors, positives, negatives]


def encode_texts(count: int, tokenizer: Any, *, max_length: int, seed: int = 1) -> list[str]:
    """Half short queries (a word to a sentence), half documents (a line to a paragraph), shuffled."""
    records = sample_records(count, seed=seed)
    texts = [r.query if i % 2 == 0 else (r.positive if i % 4 == 1 else r.negatives[0]) for i, r in enumerate(records)]
    return [fit_text(tokenizer, text, max_length - 1) for text in texts]


def token_match(poolattn_ids: Sequence[Sequence[int]], other_ids: Sequence[Sequence[int]]) -> float:
    """Fraction of texts whose token ids are identical on both sides."""
    if len(poolattn_ids) != len(other_ids):
        raise ValueError(f"{len(poolattn_ids)} vs {len(other_ids)} texts")
    same = sum(list(a) == list(b) for a, b in zip(poolattn_ids, other_ids))
    return same / max(1, len(poolattn_ids))
