"""Reader for dictd databases (a .index of headword/offset/length and a gzip-compatible .dict.dz).

Shared by the dictionary sources; it knows the container, not any dictionary's markup.
"""

from __future__ import annotations

import gzip
from pathlib import Path

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}


def decode_number(text: str) -> int:
    """dictd's base-64 integers: most significant digit first, alphabet A-Z a-z 0-9 + /."""
    value = 0
    for char in text:
        if char not in _B64_VALUE:
            raise ValueError(f"{text!r} is not a dictd base-64 number (bad character {char!r})")
        value = value * 64 + _B64_VALUE[char]
    return value


def parse_index(text: str) -> list[tuple[str, int, int]]:
    """(headword, offset, length) per index line, in file order."""
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            out.append((parts[0], decode_number(parts[1]), decode_number(parts[2])))
    return out


def read_entries(index_path: Path, dict_path: Path) -> dict[tuple[int, int], tuple[list[str], str]]:
    """(offset, length) -> (headwords pointing at it, entry text); the 00-database-* entries are skipped.

    Several headwords (aliases) may point at one entry; they are listed in index order.
    """
    body = gzip.decompress(dict_path.read_bytes())
    entries: dict[tuple[int, int], tuple[list[str], str]] = {}
    for word, offset, length in parse_index(index_path.read_text(encoding="utf-8", errors="replace")):
        if word.startswith("00-database") or word.startswith("00database"):
            continue
        key = (offset, length)
        if key not in entries:
            entries[key] = ([], body[offset:offset + length].decode("utf-8", errors="replace"))
        entries[key][0].append(word)
    return entries
