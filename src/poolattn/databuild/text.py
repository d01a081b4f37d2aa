"""Text cleaning, truncation, deduplication and the hash rules that make the build deterministic.

Every random choice in the builder is a sort by a salted SHA-1 of a stable key instead of a seeded RNG:
the result depends only on the keys, not on iteration order or the Python version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

MAX_CHARS = 600
"""Longest text the builder writes; longer texts are cut at a word boundary."""

EVAL_PERCENT = 15
"""Share of each source's items (by key hash) reserved for the evaluation suite."""

_SPACE = re.compile(r"\s+")


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space and strip the ends."""
    return _SPACE.sub(" ", text).strip()


def truncate(text: str, max_chars: int = MAX_CHARS) -> str:
    """Cut `text` to at most `max_chars` characters at a word boundary.

    A single word longer than the limit (a URL, say) is cut hard rather than dropped, so the result is
    never empty for non-empty input. Trailing punctuation that would dangle (",;:") is removed.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    text = normalize_space(text)
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    head = cut[:space] if space > 0 else text[:max_chars]
    return head.rstrip(" ,;:-")


def dedup_key(text: str) -> str:
    """Key under which two texts count as the same: case-, space- and punctuation-insensitive."""
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def dedup(items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], int]:
    """Keep the first item for each `key`, preserving order; return (kept, number dropped).

    Why: two records with the same text in one batch make an in-batch negative a false negative.
    """
    seen: set[str] = set()
    kept: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return kept, len(items) - len(kept)


def stable_hash(text: str) -> int:
    """A 64-bit integer from SHA-1: stable across processes and Python versions (unlike `hash`)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def is_eval_key(key: str) -> bool:
    """The split rule: an item is evaluation-only iff sha1(key) mod 100 < EVAL_PERCENT.

    Keys carry their source prefix ("debian:zsh", "bible:Gen.1"), so two sources never share a decision.
    """
    return stable_hash(key) % 100 < EVAL_PERCENT


def ranked(items: Iterable[T], key: Callable[[T], str], salt: str) -> list[T]:
    """Items in a pseudo-random but reproducible order: sorted by sha1(salt + key)."""
    return sorted(items, key=lambda item: (stable_hash(f"{salt}|{key(item)}"), key(item)))


def sample(items: Iterable[T], n: int, key: Callable[[T], str], salt: str) -> list[T]:
    """The first `n` items of `ranked`: a deterministic subsample without an RNG."""
    return ranked(items, key, salt)[:n]


def pick(candidates: Sequence[T], salt: str) -> T | None:
    """One reproducible choice among `candidates` (None when empty); their order must be deterministic."""
    if not candidates:
        return None
    return candidates[stable_hash(salt) % len(candidates)]


def approx_tokens(texts: Iterable[str]) -> int:
    """Rough token count of `texts` for budgeting: characters / 4, the usual English BPE ratio."""
    return sum(len(t) for t in texts) // 4 + 1
