"""Item keys and the train/evaluation split, in one place so the builder and the tests agree.

A record id names one item ("debian:zsh", "wordnet:n:00976953", "bible:Gen.1.1", "foldoc:browser").
The split key is the unit that goes wholly to one side: the item itself, except for the Bible, where it
is the chapter ("bible:Gen.1"), so a verse's neighbours (its hard negatives) are on the same side.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from poolattn.databuild.sources.bible import VersePair
from poolattn.databuild.sources.debian import DebianPackage
from poolattn.databuild.sources.foldoc import Term
from poolattn.databuild.sources.wordnet import Synset
from poolattn.databuild.text import is_eval_key

T = TypeVar("T")

TRAINING_SOURCES = ("debian", "wordnet", "bible", "foldoc")


def record_id(item: DebianPackage | Synset | VersePair | Term) -> str:
    """The stable id of an item of a training source."""
    if isinstance(item, DebianPackage):
        return f"debian:{item.name}"
    if isinstance(item, Synset):
        return f"wordnet:{item.id}"
    if isinstance(item, VersePair):
        return f"bible:{item.ref}"
    if isinstance(item, Term):
        return f"foldoc:{item.headword}"
    raise TypeError(f"no record id for {type(item).__name__}; expected one of the training sources' items")


def split_key(record: str) -> str:
    """The split unit of a record id: the id itself, or the chapter for a Bible verse."""
    source, _, rest = record.partition(":")
    if source not in TRAINING_SOURCES or not rest:
        raise ValueError(f"bad record id {record!r}; expected '<source>:<item>' with source in {TRAINING_SOURCES}")
    if source == "bible":
        return f"bible:{rest.rsplit('.', 1)[0]}"
    return record


def is_eval(item: DebianPackage | Synset | VersePair | Term) -> bool:
    """True when the item belongs to the evaluation side (see text.is_eval_key for the rule)."""
    return is_eval_key(split_key(record_id(item)))


def partition(items: Iterable[T]) -> tuple[list[T], list[T]]:
    """(training side, evaluation side), each in the input order."""
    train: list[T] = []
    held: list[T] = []
    for item in items:
        (held if is_eval(item) else train).append(item)  # type: ignore[arg-type]
    return train, held
